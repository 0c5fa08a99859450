/** Temp dirs for a test file, each removed after the test that made it. */
import { afterEach } from 'vitest';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';

/** Call at the top of a test file; the returned function makes a temp dir and gives its path. */
export function useTmpDirs(): () => Promise<string> {
  const cleanups: DirectoryResult[] = [];
  afterEach(async () => {
    for (const d of cleanups.splice(0)) await d.cleanup();
  });
  return async () => {
    const d = await tmpDir({ unsafeCleanup: true });
    cleanups.push(d);
    return d.path;
  };
}
