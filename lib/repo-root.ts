import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where tasks/, specs/, kernel-config/ live), from either src or dist/. */
export function repoRootDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes('/dist/') ? resolve(here, '..', '..') : resolve(here, '..');
}
