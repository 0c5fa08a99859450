/**
 * The real Linux source tarball inputs.lock.yaml pins (linux-source-6.12), for
 * tests that compile real kernel objects: $CLAWOS_TEST_LINUX_TARBALL, else the
 * copy a build of this repo unpacked into build/cache, else the locked .deb
 * downloaded (test/helpers/locked-debs.ts). Whichever it is, it must hash to
 * the lock's sha256.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { sha256File } from '../../lib/hash.js';
import { lockedDeb } from './locked-debs.js';

const REPO = resolve(__dirname, '../..');

export async function lockedKernelTarball(pkg = 'linux-source-6.12'): Promise<string> {
  const lock = parse(readFileSync(join(REPO, 'inputs.lock.yaml'), 'utf8')) as { debs: { name: string; arch: string; files?: Record<string, string> }[] };
  const entry = lock.debs.find((d) => d.name === pkg && d.arch === 'all');
  const [member, sha256] = Object.entries(entry?.files ?? {})[0] ?? [];
  if (!member || !sha256) throw new Error(`inputs.lock.yaml pins no tarball in ${pkg}`);
  const candidates = [process.env.CLAWOS_TEST_LINUX_TARBALL, join(REPO, 'build/cache/debs/all', pkg, 'root', member)].filter((p): p is string => !!p && existsSync(p));
  const path = candidates[0] ?? join((await lockedDeb(pkg, 'all')).root, member);
  const got = await sha256File(path);
  if (got !== sha256) throw new Error(`${path} hashes to ${got}, not the ${sha256} inputs.lock.yaml pins for ${member}`);
  return path;
}
