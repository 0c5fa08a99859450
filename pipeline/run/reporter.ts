/**
 * The only module that knows how progress looks. Three renderers:
 * - tty: listr2's default renderer (a live tree of the phase's tasks);
 * - plain: one line per event, for CI and logs (no TTY, or CI=true);
 * - json: nothing during the run (bin/ prints one JSON document at the end).
 */
import { formatDuration } from '../../lib/format.js';
import type { ListrTaskWrapper } from 'listr2';
import type { EventSink, RunEvent } from './events.js';
import type { InstanceStatus } from './state.js';
import { isPassed } from '../catalog/outcome.js';

export type ReporterMode = 'tty' | 'plain' | 'json';

export interface Reporter {
  sink: EventSink;
  /** Wait until everything has been rendered. */
  finish(): Promise<void>;
}

export function chooseMode(opts: { json: boolean; isTTY: boolean; ci: boolean }): ReporterMode {
  if (opts.json) return 'json';
  return opts.isTTY && !opts.ci ? 'tty' : 'plain';
}


/** One human line per event; the plain renderer and tests use it. */
export function formatEvent(e: RunEvent): string | null {
  switch (e.type) {
    case 'phase-start':
      return `== ${e.phase} ${e.title}: ${e.instances.length} task instance(s)`;
    case 'task-start':
      return `${e.id} start: ${e.title}`;
    case 'task-progress':
      return `${e.id} ${e.message}`;
    case 'phase-rollback':
      if (!e.checkpoint) return `== ${e.phase} rollback (RULE-005): no passed gate ${e.phase} to roll back to; outputs left as the failed tasks' rollback_cmd left them`;
      return `== ${e.phase} rollback (RULE-005) to ${e.checkpoint}: ${e.restored.length ? `${e.restored.length} output(s) restored from the vault store: ${e.restored.join(', ')}` : 'every output already matched it'}${
        e.missing.length ? `; NOT restored (not in the store): ${e.missing.join(', ')}` : ''
      }`;
    case 'task-attempt':
      return `${e.id} attempt ${e.attempt}/${e.maxAttempts} ${e.status}: ${e.message}; ${e.decision}`;
    case 'task-heartbeat': {
      const head = `${e.id} still running: ${formatDuration(e.elapsedMs)} elapsed`;
      if (e.estimateMs === null) return `${head} (no earlier PASS to estimate from)`;
      const took = `last PASS took ${formatDuration(e.estimateMs)}`;
      return e.elapsedMs < e.estimateMs ? `${head}, about ${formatDuration(e.estimateMs - e.elapsedMs)} left (${took})` : `${head}, past the estimate by ${formatDuration(e.elapsedMs - e.estimateMs)} (${took})`;
    }
    case 'task-up-to-date':
      return `${e.id} up to date (${e.status})`;
    case 'task-end':
      return `${e.id} ${e.status}${e.reason && e.status !== 'NOT_CONFIGURED' ? ` [${e.reason}]` : ''} in ${formatDuration(e.durationMs)}: ${e.message}${
        e.compilerCache ? `; ${e.compilerCache}` : ''
      }${isPassed(e.status) ? '' : ` (log: ${e.log})`}`;
    case 'gate': {
      const head = `== gate ${e.phase}: ${e.recommendation} — ${e.coverage} (report: ${e.report})`;
      return e.blockers.length ? `${head}\n${e.blockers.map((b) => `   blocker: ${b}`).join('\n')}` : head;
    }
    case 'info':
      return e.message;
  }
}

export function createReporter(mode: ReporterMode, out: NodeJS.WritableStream = process.stderr): Reporter {
  if (mode === 'json') return { sink: () => {}, finish: async () => {} };
  if (mode === 'plain') {
    // Progress can arrive per compiled file: print a task's progress when its
    // phase (the text before ':') changes, else at most every 15 s.
    const lastProgress = new Map<string, { phase: string; at: number }>();
    return {
      sink: (e) => {
        if (e.type === 'task-progress') {
          const phase = e.message.split(':')[0]!;
          const prev = lastProgress.get(e.id);
          const now = Date.now();
          if (prev && prev.phase === phase && now - prev.at < 15_000) return;
          lastProgress.set(e.id, { phase, at: now });
        }
        const line = formatEvent(e);
        if (line !== null) out.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
      },
      finish: async () => {},
    };
  }
  return listrReporter(out);
}

type Settled = { status: InstanceStatus | 'UP_TO_DATE'; message: string; durationMs: number };

/**
 * How the terminal view shows a settled task: green with its time (PASS, up to
 * date), neutral skipped with its message (NOT_CONFIGURED: not built; BUILT:
 * built but unproven; neither is a failure nor a PASS), or red (a failure).
 */
export function terminalVerdict(i: { id: string; title: string }, r: Settled): { kind: 'title' | 'skip' | 'fail'; text: string } {
  if (r.status === 'UP_TO_DATE') return { kind: 'title', text: `${i.id} ${i.title} (up to date)` };
  if (r.status === 'PASS') return { kind: 'title', text: `${i.id} ${i.title} (${formatDuration(r.durationMs)})` };
  if (r.status === 'NOT_CONFIGURED') return { kind: 'skip', text: `${i.id} NOT_CONFIGURED: ${r.message}` };
  if (r.status === 'BUILT') return { kind: 'skip', text: `${i.id} BUILT (unvalidated, not PASS): ${r.message}` };
  return { kind: 'fail', text: `${i.id} ${r.status}: ${r.message}` };
}

interface Pending {
  resolve: (v: Settled) => void;
  task?: ListrTaskWrapper<unknown, never, never>;
  settled?: Settled;
  progress?: string;
}

function listrReporter(out: NodeJS.WritableStream): Reporter {
  let chain: Promise<void> = Promise.resolve();
  const pending = new Map<string, Pending>();
  const waitFor = (id: string) => {
    let p = pending.get(id);
    if (!p) {
      p = { resolve: () => {} };
      pending.set(id, p);
    }
    const entry = p;
    return new Promise<NonNullable<Pending['settled']>>((resolve) => {
      if (entry.settled) resolve(entry.settled);
      else entry.resolve = resolve;
    });
  };
  const settle = (id: string, v: NonNullable<Pending['settled']>) => {
    const p = pending.get(id) ?? { resolve: () => {} };
    p.settled = v;
    pending.set(id, p);
    p.resolve(v);
  };
  const sink: EventSink = (e) => {
    switch (e.type) {
      case 'phase-start': {
        const makeList = (Listr: typeof import('listr2').Listr) => new Listr(
          e.instances.map((i) => ({
            title: `${i.id} ${i.title}`,
            task: async (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
              const p = pending.get(i.id) ?? { resolve: () => {} };
              p.task = task;
              pending.set(i.id, p);
              if (p.progress) task.output = p.progress;
              const v = terminalVerdict(i, await waitFor(i.id));
              if (v.kind === 'title') task.title = v.text;
              else if (v.kind === 'skip') task.skip(v.text);
              else throw new Error(v.text);
            },
          })),
          { concurrent: true, exitOnError: false, rendererOptions: { collapseSubtasks: false, collapseSkips: false } as never },
        );
        const header = formatEvent(e);
        chain = chain.then(() => {
          out.write(`${header}\n`);
          // listr2 is loaded only for a terminal: plain and JSON runs start faster without it.
          return import('listr2').then(({ Listr }) => makeList(Listr).run()).then(
            () => undefined,
            () => undefined,
          );
        });
        break;
      }
      case 'task-progress': {
        const p = pending.get(e.id) ?? { resolve: () => {} };
        p.progress = e.message;
        pending.set(e.id, p);
        if (p.task) p.task.output = e.message;
        break;
      }
      case 'task-up-to-date':
        settle(e.id, { status: 'UP_TO_DATE', message: e.message, durationMs: 0 });
        break;
      case 'task-end':
        settle(e.id, { status: e.status, message: e.message, durationMs: e.durationMs });
        break;
      case 'gate':
      case 'info': {
        const line = formatEvent(e);
        chain = chain.then(() => {
          out.write(`${line}\n`);
        });
        break;
      }
      default:
        break;
    }
  };
  return { sink, finish: () => chain };
}
