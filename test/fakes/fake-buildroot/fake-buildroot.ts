/** Where the fake Buildroot tree is, for tests of pipeline/steps/buildroot.ts (see README.md). */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The parent of buildroot-fake/: pack it with `tar -czf x.tar.gz -C FAKE_BUILDROOT_PARENT buildroot-fake`. */
export const FAKE_BUILDROOT_PARENT = fileURLToPath(new URL('.', import.meta.url));
export const FAKE_BUILDROOT_DIR = join(FAKE_BUILDROOT_PARENT, 'buildroot-fake');
