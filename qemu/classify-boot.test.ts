import { describe, expect, test } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { classifyBoot, isTerminalLine, stripAnsi, type BootClassification } from './classify-boot.js';

const FIXTURES = join(import.meta.dirname, '..', 'test', 'fixtures', 'serial-logs');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

// The verdicts the fixtures README assigns, plus the exact one-line message.
const expected: Record<string, Pick<BootClassification, 'verdict' | 'reason' | 'stage' | 'message'>> = {
  'x86_64-kernel-direct-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'x86_64-iso-seabios-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'x86_64-iso-ovmf-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'x86_64-kvm-hang-no-output.log': {
    verdict: 'TIMEOUT',
    reason: 'boot-timeout',
    stage: 'firmware',
    message: 'timed out at stage firmware, last output: Booting from ROM...',
  },
  'x86_64-panic-no-initramfs.log': {
    verdict: 'FAIL',
    reason: 'boot-panic',
    stage: 'kernel',
    message: 'kernel panic: Kernel panic - not syncing: No working init found',
  },
  'aarch64-kernel-direct-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'aarch64-iso-uefi-acpi-off-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'aarch64-iso-uefi-panic-no-timer.log': {
    verdict: 'FAIL',
    reason: 'boot-panic',
    stage: 'kernel',
    message: 'kernel panic: Kernel panic - not syncing: Unable to initialise architected timer',
  },
  'aarch64-iso-uefi-acpi-silent.log': {
    verdict: 'FAIL',
    reason: 'boot-no-console',
    stage: 'kernel',
    message: 'guest exited with no console output from the kernel, last output: EFI stub: Exiting boot services...',
  },
  'x86_64-iso-ovmf-secureboot-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'aarch64-iso-uefi-secureboot-pass.log': { verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK (no checks expected)' },
  'x86_64-ovmf-secureboot-unsigned-refused.log': {
    verdict: 'FAIL',
    reason: 'boot-firmware-refused',
    stage: 'firmware',
    message: 'the firmware refused the boot loader: BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied',
  },
  'aarch64-iso-uefi-acpi-no-console-earlycon.log': {
    verdict: 'FAIL',
    reason: 'boot-marker-missing',
    stage: 'init',
    message: 'init has no console: Warning: unable to open an initial console.',
  },
};

describe('recorded serial captures', () => {
  // Captures recorded by clawos-build's own steps are replayed by the tests of those steps.
  const replayedElsewhere: Record<string, string> = {
    'x86_64-bench-clawos.log': 'pipeline/stock-bench.test.ts',
    'x86_64-bench-debian-stock.log': 'pipeline/stock-bench.test.ts',
    'x86_64-kernel-apparmor-complain-pass.log': 'pipeline/steps/apparmor-flow.test.ts',
    'x86_64-kernel-apparmor-enforce-pass.log': 'pipeline/steps/apparmor-flow.test.ts',
    'aarch64-kernel-apparmor-complain-pass.log': 'pipeline/steps/apparmor-flow.test.ts',
    'aarch64-kernel-apparmor-enforce-pass.log': 'pipeline/steps/apparmor-flow.test.ts',
  };
  test('every fixture has an expectation here or a test that replays it', () => {
    const logs = readdirSync(FIXTURES).filter((f) => f.endsWith('.log'));
    expect(logs.sort()).toEqual([...Object.keys(expected), ...Object.keys(replayedElsewhere)].sort());
  });
  for (const [file, want] of Object.entries(expected)) {
    test(file, () => {
      const c = classifyBoot({ log: fixture(file), expectedChecks: [] });
      expect({ verdict: c.verdict, reason: c.reason, stage: c.stage, message: c.message }).toEqual(want);
      // Old-format CHECK lines are informational only (the Secure Boot captures are of the new format).
      if (!file.includes('secureboot')) expect(c.checks).toEqual([]);
    });
  }
  test('old-format CHECK lines are kept as information', () => {
    const c = classifyBoot({ log: fixture('aarch64-kernel-direct-pass.log'), expectedChecks: [] });
    expect(c.infoChecks).toHaveLength(5);
    expect(c.infoChecks[2]).toBe('cgroup2=memory pids');
  });
  test('an expected check against an old capture is missing', () => {
    const c = classifyBoot({ log: fixture('x86_64-iso-seabios-pass.log'), expectedChecks: ['kernel'] });
    expect(c.verdict).toBe('FAIL');
    expect(c.reason).toBe('boot-check-failed');
    expect(c.message).toBe('CLAWOS-BOOT-OK but kernel missing');
  });
  test('stage times follow the line timestamps', () => {
    const log = fixture('x86_64-iso-seabios-pass.log');
    const times = log.split('\n').map((_, i) => i * 10);
    const c = classifyBoot({ log, lineTimesMs: times, expectedChecks: [] });
    expect(c.stageMs).toEqual({ firmware: 0, kernel: 170, init: 1450, checks: 1460, marker: 1470 });
  });
  test('a direct kernel boot never reaches firmware', () => {
    const log = fixture('aarch64-kernel-direct-pass.log');
    const c = classifyBoot({ log, lineTimesMs: log.split('\n').map((_, i) => i), expectedChecks: [] });
    expect(c.stageMs.firmware).toBeNull();
    expect(c.stageMs.kernel).toBe(0);
  });
  test('a timeout flag turns a silent kernel into TIMEOUT', () => {
    const c = classifyBoot({ log: fixture('aarch64-iso-uefi-acpi-silent.log'), expectedChecks: [], timedOut: true });
    expect(c.verdict).toBe('TIMEOUT');
    expect(c.stage).toBe('kernel');
    expect(c.message).toBe('timed out at stage kernel, last output: EFI stub: Exiting boot services...');
  });
});

const KERNEL = ['SeaBIOS (version 1.16.2)', 'Linux version 6.1.192 (root@vm)', 'Run /init as init process', 'CLAWOS-INIT arch=x86_64'];
const CHECKS = ['kernel', 'lockdown', 'btf'];

describe('guest protocol', () => {
  test('all checks pass -> PASS', () => {
    const log = [
      ...KERNEL,
      'CLAWOS-CHECK name=kernel result=pass value=6.1.192',
      '\x1b[0mCLAWOS-CHECK name=lockdown result=pass value=none [integrity] confidentiality\r',
      'CLAWOS-CHECK name=btf result=pass value=',
      'CLAWOS-BOOT-OK passed=3',
      'reboot: Restarting system',
    ].join('\n');
    const c = classifyBoot({ log, expectedChecks: CHECKS, lineTimesMs: [0, 100, 200, 210, 300, 310, 320, 330, 340] });
    expect(c).toMatchObject({ verdict: 'PASS', reason: null, stage: 'marker', message: 'CLAWOS-BOOT-OK, all 3 expected checks passed' });
    expect(c.checks).toEqual([
      { name: 'kernel', result: 'pass', value: '6.1.192' },
      { name: 'lockdown', result: 'pass', value: 'none [integrity] confidentiality' },
      { name: 'btf', result: 'pass', value: '' },
    ]);
    expect(c.stageMs).toEqual({ firmware: 0, kernel: 100, init: 200, checks: 300, marker: 330 });
  });
  test('one check fails -> FAIL boot-check-failed', () => {
    const log = [
      ...KERNEL,
      'CLAWOS-CHECK name=kernel result=pass value=6.1.192',
      'CLAWOS-CHECK name=lockdown result=fail value=[none] integrity confidentiality',
      'CLAWOS-CHECK name=btf result=pass value=yes',
      'CLAWOS-BOOT-FAILED failed=lockdown',
    ].join('\n');
    const c = classifyBoot({ log, expectedChecks: CHECKS });
    expect(c).toMatchObject({
      verdict: 'FAIL',
      reason: 'boot-check-failed',
      stage: 'marker',
      failedChecks: ['lockdown'],
      missingChecks: [],
      message: 'CLAWOS-BOOT-FAILED failed=lockdown: lockdown failed ([none] integrity confidentiality)',
    });
  });
  test('a failed check under CLAWOS-BOOT-OK is still a failure', () => {
    const log = [...KERNEL, 'CLAWOS-CHECK name=kernel result=pass value=x', 'CLAWOS-CHECK name=lockdown result=fail value=none', 'CLAWOS-CHECK name=btf result=pass value=yes', 'CLAWOS-BOOT-OK passed=3'].join('\n');
    const c = classifyBoot({ log, expectedChecks: CHECKS });
    expect(c.verdict).toBe('FAIL');
    expect(c.message).toBe('CLAWOS-BOOT-OK but lockdown failed (none)');
  });
  test('a missing check -> FAIL boot-check-failed', () => {
    const log = [...KERNEL, 'CLAWOS-CHECK name=kernel result=pass value=6.1.192', 'CLAWOS-CHECK name=btf result=pass value=yes', 'CLAWOS-BOOT-OK passed=2'].join('\n');
    const c = classifyBoot({ log, expectedChecks: CHECKS });
    expect(c).toMatchObject({ verdict: 'FAIL', reason: 'boot-check-failed', missingChecks: ['lockdown'], message: 'CLAWOS-BOOT-OK but lockdown missing' });
  });
  test('the marker without any checks is not trusted', () => {
    const c = classifyBoot({ log: [...KERNEL, 'CLAWOS-BOOT-OK passed=0'].join('\n'), expectedChecks: CHECKS });
    expect(c).toMatchObject({
      verdict: 'FAIL',
      reason: 'boot-check-failed',
      stage: 'marker',
      missingChecks: CHECKS,
      message: 'CLAWOS-BOOT-OK but kernel missing, lockdown missing, btf missing',
    });
  });
  test('checks but no marker, guest exited -> marker missing', () => {
    const c = classifyBoot({ log: [...KERNEL, 'CLAWOS-CHECK name=kernel result=pass value=6.1.192', 'reboot: Restarting system'].join('\n'), expectedChecks: CHECKS });
    expect(c).toMatchObject({
      verdict: 'FAIL',
      reason: 'boot-marker-missing',
      stage: 'checks',
      message: 'guest exited at stage checks without a CLAWOS-BOOT marker, last output: reboot: Restarting system',
    });
  });
  test('an oops -> FAIL boot-oops even with a marker', () => {
    const log = [...KERNEL, 'BUG: kernel NULL pointer dereference, address: 0000000000000000', 'CLAWOS-BOOT-OK passed=0'].join('\n');
    const c = classifyBoot({ log, expectedChecks: [] });
    expect(c).toMatchObject({ verdict: 'FAIL', reason: 'boot-oops', message: 'kernel oops: BUG: kernel NULL pointer dereference, address: 0000000000000000' });
  });
  test('a panic after the marker still fails', () => {
    const log = [...KERNEL, 'CLAWOS-BOOT-OK passed=0', '[    3.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000'].join('\n');
    const c = classifyBoot({ log, expectedChecks: [] });
    expect(c.message).toBe('kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000');
  });
  test('no output at all', () => {
    expect(classifyBoot({ log: '', expectedChecks: [] })).toMatchObject({ verdict: 'FAIL', reason: 'boot-no-console', stage: 'none', message: 'guest exited with no output' });
    expect(classifyBoot({ log: '', expectedChecks: [], timedOut: true })).toMatchObject({ verdict: 'TIMEOUT', stage: 'none', message: 'timed out with no guest output' });
  });
  test('infra errors pass through', () => {
    expect(classifyBoot({ log: '', expectedChecks: [], infraError: 'no qemu' })).toMatchObject({ verdict: 'INFRA_ERROR', reason: 'infra', message: 'no qemu' });
  });
});

test('firmware dropping to the UEFI shell is a failure at stage firmware', () => {
  const log = [
    'UEFI firmware (version  built at 13:10:49 on Nov  5 2024)\r',
    '\x1b[2J\x1b[01;01HBdsDxe: failed to load Boot0001 "UEFI QEMU QEMU CD-ROM " from PciRoot(0x0)/Pci(0x1,0x0)/Scsi(0x0,0x0): Not Found\r',
    'BdsDxe: starting Boot0002 "EFI Internal Shell" from Fv(64074AFE)\r',
    '\x1b[2J\x1b[01;01H\x1b[01;01HUEFI Interactive Shell v2.2\r',
  ].join('\n');
  expect(isTerminalLine('UEFI Interactive Shell v2.2')).toBe(true);
  expect(classifyBoot({ log, expectedChecks: [], timedOut: false })).toMatchObject({
    verdict: 'FAIL',
    reason: 'boot-marker-missing',
    stage: 'firmware',
    message: 'firmware found nothing to boot: BdsDxe: failed to load Boot0001 "UEFI QEMU QEMU CD-ROM " from PciRoot(0x0)/Pci(0x1,0x0)/Scsi(0x0,0x0): Not Found',
  });
  expect(classifyBoot({ log: 'SeaBIOS (version 1.16.2)\nNo bootable device.', expectedChecks: [] }).message).toBe('firmware found nothing to boot: No bootable device.');
});

test('stripAnsi removes CSI, RIS and charset escapes', () => {
  expect(stripAnsi('\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1)\r')).toBe('SeaBIOS (version 1)');
  expect(stripAnsi('\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: x')).toBe('BdsDxe: x');
});

describe('no PASS the serial log does not earn (issue 11)', () => {
  const lines = (...l: string[]) => ['Linux version 6.1.192-clawos', 'Run /init as init process', 'CLAWOS-INIT arch=x86_64', ...l].join('\n') + '\n';
  test('a panic glued onto a check line is a panic', () => {
    const c = classifyBoot({
      log: lines('CLAWOS-CHECK name=kernel result=pass value=6.1.192[    3.141592] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b', 'CLAWOS-BOOT-OK passed=1'),
      expectedChecks: ['kernel'],
    });
    expect({ verdict: c.verdict, reason: c.reason, message: c.message }).toEqual({
      verdict: 'FAIL',
      reason: 'boot-panic',
      message: 'kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b',
    });
  });
  test('BOOT-FAILED after BOOT-OK fails the boot', () => {
    const c = classifyBoot({ log: lines('CLAWOS-CHECK name=kernel result=pass value=6.1', 'CLAWOS-BOOT-OK passed=1', 'CLAWOS-BOOT-FAILED failed=late'), expectedChecks: ['kernel'] });
    expect({ verdict: c.verdict, reason: c.reason, message: c.message }).toEqual({ verdict: 'FAIL', reason: 'boot-check-failed', message: 'CLAWOS-BOOT-FAILED failed=late' });
  });
});

describe('Secure Boot expectations (data of the Secure Boot variants: expect_checks, expect_log)', () => {
  const sb = { expectedChecks: ['probe', 'secureboot'], expectedLog: ['EFI stub: UEFI Secure Boot is enabled.'] };
  test.each(['x86_64-iso-ovmf-secureboot-pass.log', 'aarch64-iso-uefi-secureboot-pass.log'])('%s: the guest proved it and the kernel said so', (file) => {
    const c = classifyBoot({ log: fixture(file), ...sb });
    expect([c.verdict, c.message]).toEqual(['PASS', 'CLAWOS-BOOT-OK, all 2 expected checks passed']);
    expect(c.checks.find((x) => x.name === 'secureboot')?.value).toBe('SecureBoot=1 lockdown=none [integrity] confidentiality');
  });
  test('a serial log without the kernel\'s report fails, naming the text', () => {
    const log = fixture('x86_64-iso-ovmf-secureboot-pass.log').replace(/EFI stub: UEFI Secure Boot is enabled\./g, 'EFI stub: (removed)');
    const c = classifyBoot({ log, ...sb });
    expect([c.verdict, c.reason, c.message]).toEqual(['FAIL', 'boot-check-failed', 'CLAWOS-BOOT-OK but the serial log lacks "EFI stub: UEFI Secure Boot is enabled."']);
  });
  test('a boot without Secure Boot (no secureboot check reported) fails in a Secure Boot variant', () => {
    const c = classifyBoot({ log: fixture('x86_64-iso-ovmf-pass.log'), expectedChecks: ['secureboot'] });
    expect([c.verdict, c.reason, c.message]).toEqual(['FAIL', 'boot-check-failed', 'CLAWOS-BOOT-OK but secureboot missing']);
  });
  test('the firmware\'s refusal ends the boot at once', () => {
    expect(isTerminalLine('BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied')).toBe(true);
    expect(isTerminalLine('BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(x): Security Violation')).toBe(false);
  });
});
