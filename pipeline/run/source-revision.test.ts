import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { describe, expect, it } from 'vitest';
import { run } from '../../lib/proc.js';
import { sourceRevision } from './session.js';

describe('sourceRevision: the commit a run records, and whether its tracked files changed', () => {
  it('null outside git and before the first commit; the commit, clean with an untracked file, dirty with a changed tracked file', async () => {
    const d = await dir({ unsafeCleanup: true });
    try {
      expect(await sourceRevision(d.path)).toBeNull();
      const git = (...a: string[]) => run(['git', '-C', d.path, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { captureStdout: true });
      await git('init', '-q');
      await writeFile(join(d.path, 'a.yaml'), 'a: 1\n');
      await git('add', 'a.yaml');
      expect(await sourceRevision(d.path)).toBeNull(); // no commit yet
      await git('commit', '-qm', 'a');
      const head = (await git('rev-parse', 'HEAD')).stdout.trim();
      await writeFile(join(d.path, 'ci-harness.log'), 'x');
      expect(await sourceRevision(d.path)).toEqual({ commit: head, dirty: false });
      await appendFile(join(d.path, 'a.yaml'), 'b: 2\n');
      expect(await sourceRevision(d.path)).toEqual({ commit: head, dirty: true });
    } finally {
      await d.cleanup();
    }
  });
});
