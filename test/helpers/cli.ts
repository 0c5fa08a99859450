/** The built clawos-build binary, run as a user runs it: exit code, stdout, stderr lines apart. */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';

export const CLI = join(repoRootDir(), 'bin', 'clawos-build.js');

export interface CliResult {
  exitCode: number | null;
  stdout: string;
  stderr: string[];
}

export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliResult> {
  await access(join(repoRootDir(), 'dist', 'bin', 'cli.js')).catch(() => {
    throw new Error('dist/ missing: run npx tsc -p tsconfig.json first');
  });
  const stderr: string[] = [];
  const r = await run(['node', CLI, ...args], {
    captureStdout: true,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    sink: (stream, line) => {
      if (stream === 'stderr') stderr.push(line);
    },
  });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr };
}
