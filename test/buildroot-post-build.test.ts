/**
 * board/clawos/post-build.sh, run as Buildroot runs it inside A-04's sandbox
 * (bwrap, every capability dropped): the generated layers (CLAWOS_EXTRAS) are
 * copied into the target, again on a rebuild in the same output dir, where the
 * last build's copies are read-only; a target that lacks what the checks need
 * fails with the reason.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { run } from '../lib/proc.js';
import { useTmpDirs } from './helpers/tmp-dirs.js';

const tmp = useTmpDirs();
const SCRIPT = join(repoRootDir(), 'buildroot-external', 'board', 'clawos', 'post-build.sh');

async function target(d: string): Promise<string> {
  const t = join(d, 'target');
  for (const f of ['bin/busybox', 'usr/lib/clawos/checks.sh', 'lib/modules/clawos_canary.ko', 'lib/modules/clawos_canary-unsigned.ko']) {
    await mkdir(join(t, f, '..'), { recursive: true });
    await writeFile(join(t, f), 'x');
  }
  await writeFile(join(t, 'init'), '#!/bin/sh\n');
  await chmod(join(t, 'init'), 0o755);
  await mkdir(join(t, 'etc', 'clawos'), { recursive: true });
  await writeFile(join(t, 'etc', 'clawos', 'expect.env'), "ARCH='x86_64'\nKERNEL_RELEASE='6.12.118-clawos'\nLSMS='lockdown,yama,apparmor,bpf'\n");
  return t;
}

/** post-build.sh TARGET arch=x86_64 under bwrap with no capabilities (root without CAP_DAC_OVERRIDE, as A-04 runs). */
function postBuild(d: string, t: string, extras: string) {
  return run(['bwrap', '--ro-bind', '/', '/', '--bind', d, d, '--dev', '/dev', '--cap-drop', 'ALL', '--setenv', 'CLAWOS_EXTRAS', extras, '--', 'sh', SCRIPT, t, 'arch=x86_64'], { tailLines: 20 });
}

describe('buildroot post-build.sh', () => {
  it('copies the generated layers, and again over the read-only copies of the last build', async () => {
    const d = await tmp();
    const t = await target(d);
    const policy = join(d, 'security', 'apparmor', 'policy');
    await mkdir(policy, { recursive: true });
    await writeFile(join(policy, 'clawos-selftest.enforce.bin'), 'first');
    await chmod(join(policy, 'clawos-selftest.enforce.bin'), 0o444);
    const loader = join(d, 'loader');
    await writeFile(loader, 'loader 1');
    await chmod(loader, 0o444);
    const extras = `${policy}\tetc/apparmor/clawos\n${loader}\tusr/lib/clawos/seccomp/clawos-seccomp-exec`;
    const first = await postBuild(d, t, extras);
    expect([first.exitCode, first.tail]).toEqual([0, []]);
    expect(await readFile(join(t, 'etc/apparmor/clawos/clawos-selftest.enforce.bin'), 'utf8')).toBe('first');

    // The layers changed (a new kernel, a new policy): the rebuild must replace the read-only copies.
    await chmod(join(policy, 'clawos-selftest.enforce.bin'), 0o644);
    await writeFile(join(policy, 'clawos-selftest.enforce.bin'), 'second');
    await chmod(join(policy, 'clawos-selftest.enforce.bin'), 0o444);
    await chmod(loader, 0o644);
    await writeFile(loader, 'loader 2');
    await chmod(loader, 0o444);
    const again = await postBuild(d, t, extras);
    expect([again.exitCode, again.tail]).toEqual([0, []]);
    expect(await readFile(join(t, 'etc/apparmor/clawos/clawos-selftest.enforce.bin'), 'utf8')).toBe('second');
    expect(await readFile(join(t, 'usr/lib/clawos/seccomp/clawos-seccomp-exec'), 'utf8')).toBe('loader 2');
  });

  it('fails with the reason when the target lacks what the checks need', async () => {
    const d = await tmp();
    const t = await target(d);
    await writeFile(join(t, 'etc', 'clawos', 'expect.env'), "ARCH='aarch64'\nKERNEL_RELEASE='6.12.118-clawos'\nLSMS='bpf'\n");
    const r = await postBuild(d, t, '');
    expect([r.exitCode, r.tail]).toEqual([1, ["clawos post-build: /etc/clawos/expect.env is for another arch (want ARCH='x86_64')"]]);
  });
});
