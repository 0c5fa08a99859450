/**
 * Real Debian packages at the versions inputs.lock.yaml pins, for tests that need
 * real files from them (systemd-boot-efi's EFI stubs, GRUB's i386-pc modules):
 * `apt-get download NAME:ARCH=VERSION` once per test process, checked against the
 * lock's sha256, unpacked with dpkg-deb -x.
 */
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { sha256File } from '../../lib/hash.js';
import { run } from '../../lib/proc.js';

const REPO = resolve(__dirname, '../..');
let dir: Promise<string> | undefined;
const debs = new Map<string, Promise<{ deb: string; root: string }>>();

/** The .deb and its unpacked tree of NAME:ARCH at the locked version. */
export function lockedDeb(name: string, arch: string): Promise<{ deb: string; root: string }> {
  const key = `${name}:${arch}`;
  let p = debs.get(key);
  if (!p) {
    p = (async () => {
      const lock = parse(readFileSync(join(REPO, 'inputs.lock.yaml'), 'utf8')) as { debs: { name: string; arch: string; version: string; sha256: string }[] };
      const d = lock.debs.find((x) => x.name === name && x.arch === arch);
      if (!d) throw new Error(`inputs.lock.yaml pins no ${key}`);
      const base = await (dir ??= mkdtemp(join(tmpdir(), 'clawos-locked-debs-')));
      const cwd = await mkdtemp(join(base, `${name}-${arch}-`));
      const r = await run(['apt-get', 'download', `${key}=${d.version}`], { cwd });
      if (!r.ok) throw new Error(`apt-get download ${key}=${d.version}: ${r.tail.join(' / ')}`);
      const deb = join(cwd, (await readdir(cwd)).find((f) => f.endsWith('.deb'))!);
      if ((await sha256File(deb)) !== d.sha256) throw new Error(`${deb}: not the locked sha256 ${d.sha256}`);
      const root = join(cwd, 'root');
      const x = await run(['dpkg-deb', '-x', deb, root]);
      if (!x.ok) throw new Error(x.tail.join(' / '));
      return { deb, root };
    })();
    debs.set(key, p);
  }
  return p;
}
