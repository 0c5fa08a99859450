/**
 * Per-agent logs, as the catalog's RULE-007 names them: agent-{name}-{date}.log,
 * in <build>/logs (or --log-dir). Several task instances of one agent share the
 * file, so each line carries the instance id.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export class AgentLogs {
  readonly date: string;
  constructor(
    readonly dir: string,
    now = new Date(),
  ) {
    this.date = now.toISOString().slice(0, 10);
    mkdirSync(dir, { recursive: true });
  }

  pathFor(agent: string): string {
    return join(this.dir, `agent-${agent}-${this.date}.log`);
  }

  /** A line writer for one task instance. Synchronous appends keep lines whole and ordered. */
  writer(agent: string, instanceId: string): (line: string) => void {
    const path = this.pathFor(agent);
    return (line: string) => {
      const ts = new Date().toISOString().slice(11, 19);
      appendFileSync(path, `${ts} [${instanceId}] ${line}\n`);
    };
  }
}
