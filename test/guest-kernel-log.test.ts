// The kernel-log check (issue 11, item 8): /init lowers the console log level, so
// BUG:/WARNING:/UBSAN reports never reach the serial log by themselves. The guest
// scans dmesg with the patterns of kernel-log.patterns (data) after every other
// check and fails the boot on any match, quoting the first offending line.
// Here checks.sh's check_kernel_log runs on the build host under busybox sh, with
// `dmesg` replaced by a recorded real serial log (kernel messages as dmesg shows
// them), clean or with one real-format report put in the middle.
import { describe, expect, it } from 'vitest';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../lib/repo-root.js';
import { DEFAULT_OVERLAY } from '../pipeline/steps/rootfs.js';
import { loadExpectedChecks } from '../pipeline/boot/guest-boot.js';
import { classifyBoot } from '../qemu/classify-boot.js';
import { scanKernelLog } from './helpers/kernel-log-scan.js';
import { useTmpDirs } from './helpers/tmp-dirs.js';

const root = repoRootDir();
const lib = join(root, DEFAULT_OVERLAY, 'usr/lib/clawos');
const PATTERNS = join(lib, 'kernel-log.patterns');
const LOGS = join(root, 'test/fixtures/serial-logs');
const CHECKS_YAML = join(root, 'buildroot-external/board/clawos/checks.yaml');

const tmp = useTmpDirs();

/** The real captures whose boot got to init: their kernel messages are what dmesg holds. */
async function bootedLogs(): Promise<string[]> {
  const out: string[] = [];
  for (const f of (await readdir(LOGS)).filter((n) => n.endsWith('.log')).sort()) {
    if ((await readFile(join(LOGS, f), 'utf8')).includes('Run /init as init process')) out.push(f);
  }
  return out;
}

/** check_kernel_log on `dmesgFile` (test/helpers/kernel-log-scan.ts), in a temp dir of this test. */
const scan = async (dmesgFile: string, env: Record<string, string> = {}) => scanKernelLog(dmesgFile, { tmpDir: await tmp(), env });

/** Real report formats, as the kernel prints them (one line each is enough to fail the boot). */
const REPORTS = [
  'BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580',
  'BUG: KASAN: slab-out-of-bounds in clawos_canary_init+0x2d/0x40 [clawos_canary]',
  'BUG: kernel NULL pointer dereference, address: 0000000000000000',
  'watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]',
  'BUG kmalloc-64 (Tainted: G           O      ): Redzone overwritten',
  'kernel BUG at mm/slub.c:4300!',
  'WARNING: CPU: 0 PID: 1 at kernel/fork.c:2012 copy_process+0x1a2/0x1d40',
  '------------[ cut here ]------------',
  'Oops: 0002 [#1] PREEMPT SMP NOPTI',
  'general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP',
  'Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP',
  'UBSAN: shift-out-of-bounds in kernel/time/timer.c:1893:17',
  'WARNING: possible circular locking dependency detected',
  'rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:',
  'INFO: task kworker/0:1:12 blocked for more than 120 seconds.',
];

describe('check_kernel_log (checks.sh) on recorded serial logs', () => {
  it('passes every real capture that reached init, both arches: no false alarm in a real boot log', async () => {
    const logs = await bootedLogs();
    expect(logs.some((f) => f.startsWith('x86_64-'))).toBe(true);
    expect(logs.some((f) => f.startsWith('aarch64-'))).toBe(true);
    const patterns = (await readFile(PATTERNS, 'utf8')).split('\n').filter((l) => l.trim() && !l.startsWith('#')).length;
    for (const f of logs) {
      const lines = (await readFile(join(LOGS, f), 'utf8')).replace(/\n$/, '').split('\n').length;
      expect({ f, ...(await scan(join(LOGS, f))) }).toEqual({
        f,
        line: `CLAWOS-CHECK name=kernel-log result=pass value=dmesg clean: ${lines} lines, none matches the ${patterns} patterns of ${PATTERNS}`,
        rc: 'rc=0',
      });
    }
  });

  it.each(REPORTS)('fails on "%s" in the middle of a real log, quoting it', async (report) => {
    const d = await tmp();
    const real = (await readFile(join(LOGS, 'x86_64-kernel-apparmor-enforce-pass.log'), 'utf8')).split('\n');
    const at = real.indexOf('Run /init as init process');
    const f = join(d, 'dmesg.txt');
    await writeFile(f, [...real.slice(0, at), report, ...real.slice(at)].join('\n'));
    expect(await scan(f)).toEqual({
      line: `CLAWOS-CHECK name=kernel-log result=fail value=dmesg: ${report.replace(/\s/g, ' ')} (1 line(s) match ${PATTERNS})`,
      rc: 'rc=1',
    });
  });

  it('counts every offending line and quotes the first; lines that only look alike do not count', async () => {
    const d = await tmp();
    const f = join(d, 'dmesg.txt');
    await writeFile(
      f,
      [
        'Linux version 6.1.192-clawos',
        'DEBUG: not a kernel report',
        'kasan: KernelAddressSanitizer initialized',
        'Warning: unable to open an initial console.',
        'Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on',
        'UBSAN: array-index-out-of-bounds in net/core/dev.c:100:5',
        'BUG: scheduling while atomic: sh/1/0x00000002',
      ].join('\n'),
    );
    expect(await scan(f)).toEqual({
      line: `CLAWOS-CHECK name=kernel-log result=fail value=dmesg: UBSAN: array-index-out-of-bounds in net/core/dev.c:100:5 (2 line(s) match ${PATTERNS})`,
      rc: 'rc=1',
    });
  });

  it('fails rather than pass blind: no patterns, or a dmesg that cannot be read', async () => {
    const d = await tmp();
    const empty = join(d, 'empty.patterns');
    await writeFile(empty, '# only a comment\n\n');
    const clean = join(LOGS, 'aarch64-kernel-direct-pass.log');
    expect(await scan(clean, { KERNEL_LOG_PATTERNS: empty })).toEqual({ line: `CLAWOS-CHECK name=kernel-log result=fail value=no patterns in ${empty}`, rc: 'rc=1' });
    expect(await scan(join(d, 'no-such-dmesg'))).toMatchObject({ line: expect.stringMatching(/^CLAWOS-CHECK name=kernel-log result=fail value=dmesg failed: cat: can't open '.*no-such-dmesg': No such file or directory$/), rc: 'rc=1' });
  });
});

describe('kernel-log in the boot verdict', () => {
  it('is expected on both arches, and /init runs it after every other check', async () => {
    for (const arch of ['x86_64', 'aarch64']) {
      const checks = await loadExpectedChecks(CHECKS_YAML, arch, { cpu_flags: arch === 'x86_64' ? ['smep'] : [] });
      expect(checks.at(-1)).toBe('kernel-log');
    }
    const init = await readFile(join(root, DEFAULT_OVERLAY, 'init'), 'utf8');
    const loop = init.indexOf('for _c in /usr/lib/clawos/checks.d/*.sh');
    const kl = init.indexOf('run_check kernel-log check_kernel_log');
    expect(loop).toBeGreaterThan(0);
    expect(kl).toBeGreaterThan(loop);
    expect(kl).toBeLessThan(init.indexOf('CLAWOS-BOOT-OK passed=$PASSED'));
  });

  it('a real boot log without a kernel-log line is not PASS any more; with a failing one it names the offending line', async () => {
    const real = await readFile(join(LOGS, 'x86_64-kernel-apparmor-enforce-pass.log'), 'utf8');
    // That image ran these checks (no seccomp-filter/cgroup-quotas scripts yet), plus kernel-log from checks.yaml.
    const expected = ['kernel', 'lsm', 'lockdown', 'btf', 'cgroup2', 'seccomp', 'namespaces', 'module-sig', 'pivot-root', 'cpu-flags', 'apparmor', 'kernel-log'];
    expect(await loadExpectedChecks(CHECKS_YAML, 'x86_64', { cpu_flags: ['smep'] })).toEqual(expect.arrayContaining(expected));
    expect(classifyBoot({ log: real, expectedChecks: expected })).toMatchObject({ verdict: 'FAIL', reason: 'boot-check-failed', message: 'CLAWOS-BOOT-OK but kernel-log missing' });

    const d = await tmp();
    const f = join(d, 'dmesg.txt');
    await writeFile(f, `${real}BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n`);
    const { line } = await scan(f);
    const log = real.replace('CLAWOS-BOOT-OK passed=11', `${line}\nCLAWOS-BOOT-FAILED failed=kernel-log`);
    const c = classifyBoot({ log, expectedChecks: expected });
    expect(c).toMatchObject({ verdict: 'FAIL', reason: 'boot-check-failed', failedChecks: ['kernel-log'] });
    expect(c.message).toBe(
      'CLAWOS-BOOT-FAILED failed=kernel-log: kernel-log failed (dmesg: BUG: sleeping function called from invalid context at kernel/locking/mut…)',
    );
  });
});
