/**
 * One clawos-build per build dir at a time: a lock file holding the owner's
 * pid, created exclusively. A lock whose process is gone is stale and taken over.
 */
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../lib/errors.js';

export async function acquireBuildLock(buildDir: string): Promise<() => Promise<void>> {
  await mkdir(buildDir, { recursive: true });
  const path = join(buildDir, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await unlink(path).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      let alive = false;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new UserError(`another clawos-build (pid ${pid}) is using ${buildDir}`, 'wait for it to finish, or use another --build-dir');
      await unlink(path).catch(() => {});
    }
  }
  throw new UserError(`cannot lock ${buildDir}`);
}
