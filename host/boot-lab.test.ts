import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { run } from '../lib/proc.js';
import { UserError } from '../lib/errors.js';
import { bootTimeout, findAccelerator, loadMachine, selectVariants, type QemuMachine } from '../qemu/machine.js';
import type { BootRecord } from '../qemu/boot.js';
import {
  formatLabSummary,
  junitXml,
  labExitCode,
  percentile,
  planBoots,
  runBootLab,
  stats,
  summarizeLab,
  tailsOf,
  xmlAttr,
  xmlText,
  type LabEvent,
  type LabRun,
  type PlannedBoot,
} from './boot-lab.js';
import { bootCommand } from '../bin/commands/boot.js';
import { makeTestRepo, type TestRepo } from '../test/helpers/test-repo.js';

const REPO = join(import.meta.dirname, '..');
const FAKE = join(REPO, 'test', 'fakes', 'fake-qemu');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');
const PASS_LOG = join(LOGS, 'x86_64-iso-seabios-pass.log');
const PANIC_LOG = join(LOGS, 'x86_64-panic-no-initramfs.log');
const HANG_LOG = join(LOGS, 'x86_64-kvm-hang-no-output.log');
const TCG = { accel: 'tcg', note: 'KVM probe failed: no kernel output in 15 s; using TCG' };

let x86: QemuMachine;
let arm: QemuMachine;
beforeAll(async () => {
  x86 = await loadMachine(REPO, 'qemu/x86_64.yaml');
  arm = await loadMachine(REPO, 'qemu/aarch64.yaml');
});

let tmp: DirectoryResult | undefined;
let repo: TestRepo | undefined;
afterEach(async () => {
  await tmp?.cleanup();
  await repo?.cleanup();
  tmp = undefined;
  repo = undefined;
});

/** x86_64 with a short TCG timeout, so a hung boot costs seconds, not minutes (8 s: a fake passing boot under a loaded 2-core test run needs more than 2). */
function shortTimeout(m: QemuMachine, s = 8): QemuMachine {
  const copy = structuredClone(m);
  for (const a of copy.accelerators) a.timeout_s = s;
  return copy;
}

describe('percentiles (nearest rank)', () => {
  it('p50, p95 and max of 1..20 and of one value', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(10);
    expect(percentile(xs, 95)).toBe(19);
    expect(stats(xs)).toEqual({ n: 20, p50_ms: 10, p95_ms: 19, max_ms: 20 });
    expect(stats([7])).toEqual({ n: 1, p50_ms: 7, p95_ms: 7, max_ms: 7 });
    expect(stats([300, 100, 200])).toEqual({ n: 3, p50_ms: 200, p95_ms: 300, max_ms: 300 });
    expect(stats([])).toBeNull();
  });
});

describe('boot timeouts from qemu/ data', () => {
  it('per arch and accelerator: aarch64 under TCG gets several times x86_64', () => {
    const x = bootTimeout(x86, findAccelerator(x86, 'tcg'), { concurrent: 1, hostCpus: 2 });
    const a = bootTimeout(arm, findAccelerator(arm, 'tcg'), { concurrent: 1, hostCpus: 2 });
    expect(x).toEqual({ seconds: 240, factor: 1, note: '240 s (x86_64 tcg timeout_s; 1 boot(s) at once on 2 host CPU(s) need no scaling)' });
    expect(a.seconds).toBe(600);
    expect(a.seconds / x.seconds).toBeGreaterThanOrEqual(2.5);
    expect(bootTimeout(x86, findAccelerator(x86, 'kvm'), { concurrent: 8, hostCpus: 2 })).toEqual({ seconds: 90, factor: 1, note: '90 s (x86_64 kvm timeout_s)' });
  });

  it('TCG scales with boots side by side on too few host CPUs, up to max_factor', () => {
    expect(bootTimeout(x86, findAccelerator(x86, 'tcg'), { concurrent: 3, hostCpus: 2 })).toEqual({
      seconds: 360,
      factor: 1.5,
      note: '360 s (x86_64 tcg timeout_s 240 s x 1.5 for 3 boots at once on 2 host CPU(s))',
    });
    expect(bootTimeout(arm, findAccelerator(arm, 'tcg'), { concurrent: 16, hostCpus: 2 })).toEqual({
      seconds: 2400,
      factor: 4,
      note: '2400 s (aarch64 tcg timeout_s 600 s x 4 for 16 boots at once on 2 host CPU(s), capped by max_factor)',
    });
    expect(bootTimeout(x86, findAccelerator(x86, 'tcg'), { concurrent: 2, hostCpus: 8 }).seconds).toBe(240);
  });
});

describe('--firmware bios|uefi|variant maps onto the machine data', () => {
  it('selects by firmware kind or by name', () => {
    expect(selectVariants(x86, 'bios').map((v) => v.name)).toEqual(['seabios', 'usb-bios']);
    expect(selectVariants(x86, 'uefi').map((v) => v.name)).toEqual(['ovmf', 'ovmf-secureboot', 'usb-uefi']);
    expect(selectVariants(arm, 'uefi').map((v) => v.name)).toEqual(['uefi-acpi', 'uefi-dt', 'uefi-secureboot', 'usb-uefi']);
    expect(selectVariants(arm, 'uefi-dt').map((v) => v.name)).toEqual(['uefi-dt']);
    expect(selectVariants(x86).map((v) => v.name)).toEqual(['seabios', 'ovmf', 'ovmf-secureboot', 'usb-bios', 'usb-uefi']);
  });
  it('refuses what the arch does not have, naming what it has', () => {
    const e = (() => {
      try {
        selectVariants(arm, 'bios');
      } catch (err) {
        return err as UserError;
      }
      throw new Error('no error');
    })();
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe('aarch64 has no bios boot variant');
    expect(e.hint).toBe('choose one of: uefi-acpi (uefi), uefi-dt (uefi), uefi-secureboot (uefi), usb-uefi (uefi)');
    expect(() => selectVariants(x86, 'coreboot')).toThrow('unknown --firmware coreboot for x86_64');
  });
});

// ------------------------------------------------------------- fixed data

function rec(over: Partial<BootRecord> & Pick<BootRecord, 'verdict'>): BootRecord {
  return {
    reason: null,
    stage: 'marker',
    stage_ms: { firmware: 100, kernel: 2000, init: 5000, checks: 5100, marker: 6000 },
    checks: [],
    failed_checks: [],
    missing_checks: [],
    message: 'CLAWOS-BOOT-OK, all 10 expected checks passed',
    arch: 'x86_64',
    variant: 'seabios',
    machine: 'q35',
    accel: 'tcg',
    accel_note: 'TCG',
    duration_ms: 6500,
    command: 'qemu-system-x86_64 …',
    serial_log: `${over.variant ?? 'seabios'}.serial.log`,
    qemu_version: '7.2.22',
    qemu_exit: { code: 0, signal: null },
    qemu_stderr: [],
    ...over,
  };
}

function fixedRun(): LabRun {
  const boot = (index: number, round: number, variant: string, r: BootRecord | null, tail: string[] = []) => ({
    index,
    round,
    arch: 'x86_64',
    variant,
    firmware_kind: variant === 'seabios' ? 'bios' : 'uefi',
    dir: `x86_64/${variant}/00${round}`,
    record: r,
    log_tail: tail,
  });
  return {
    arch: 'x86_64',
    iso: '/b/build-engineer/x86_64/clawos-x86_64.iso',
    iso_sha256: '0123456789abcdef'.repeat(4),
    accel: 'tcg',
    accel_note: 'KVM probe failed: no kernel output in 15 s; using TCG',
    timeout: { seconds: 240, factor: 1, note: '240 s (x86_64 tcg timeout_s)' },
    jobs: 2,
    repeat: 3,
    until_fail: true,
    started_at: '2025-11-21T10:00:00.000Z',
    duration_ms: 31_000,
    labDir: '/b/boots/2025-11-21T10-00-00-000Z',
    boots: [
      boot(1, 1, 'seabios', rec({ verdict: 'PASS' })),
      boot(2, 1, 'ovmf', rec({ verdict: 'PASS', variant: 'ovmf', duration_ms: 9000, stage_ms: { firmware: 300, kernel: 4000, init: 7000, checks: 7100, marker: 8000 } })),
      boot(
        3,
        2,
        'seabios',
        rec({
          verdict: 'FAIL',
          reason: 'boot-panic',
          stage: 'kernel',
          message: 'kernel panic: Kernel panic - not syncing: No working init found',
          duration_ms: 3000,
          stage_ms: { firmware: 120, kernel: 2100, init: null, checks: null, marker: null },
        }),
        ['Run /bin/sh as init process', 'Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.', 'Kernel Offset: 0x2fa00000 & <disabled>'],
      ),
      boot(4, 2, 'ovmf', rec({ verdict: 'PASS', variant: 'ovmf', duration_ms: 9500, stage_ms: { firmware: 310, kernel: 4200, init: 7300, checks: 7400, marker: 8400 } })),
      boot(5, 3, 'seabios', null),
      boot(6, 3, 'ovmf', null),
    ],
    stopped: { after_boot: 3, verdict: 'FAIL', reason: 'boot-panic', in_flight: 1 },
    interrupted: false,
  };
}

describe('lab summary on fixed boots', () => {
  it('counts, percentiles per stage, flakiness, buckets and the until-fail stop', () => {
    const s = summarizeLab(fixedRun());
    expect(s.counts).toEqual({ PASS: 3, FAIL: 1, TIMEOUT: 0, INFRA_ERROR: 0 });
    expect(s).toMatchObject({ ok: false, planned: 6, run: 4, not_started: 2 });
    expect(s.groups[0]!.stages.kernel).toEqual({ n: 2, p50_ms: 2000, p95_ms: 2100, max_ms: 2100 });
    expect(s.groups[0]!.stages.marker).toEqual({ n: 1, p50_ms: 6000, p95_ms: 6000, max_ms: 6000 });
    expect(s.flaky).toEqual([{ iso_sha256: '0123456789abcdef'.repeat(4), arch: 'x86_64', variant: 'seabios', verdicts: { PASS: 1, FAIL: 1 }, boots: [1, 3] }]);
    expect(s.failure_buckets).toHaveLength(1);
    expect(s.failure_buckets[0]!.sample.serial_log).toBe('x86_64/seabios/002/seabios.serial.log');
    expect(labExitCode(s)).toBe(1);
  });

  it('prints exactly this text', () => {
    expect(formatLabSummary(summarizeLab(fixedRun()))).toBe(
      [
        'boot lab x86_64: 4 of 6 boots run in 31.0 s, 2 at a time, tcg (timeout 240 s each); ISO clawos-x86_64.iso sha256 0123456789ab',
        'verdicts: 3 PASS, 1 FAIL, 0 TIMEOUT, 0 INFRA_ERROR, 2 not started',
        'stage times from QEMU start (n = boots that reached the stage):',
        '  boot            stage     n  p50     p95     max',
        '  x86_64/seabios  firmware  2  100 ms  120 ms  120 ms',
        '                  kernel    2  2.0 s   2.1 s   2.1 s',
        '                  init      1  5.0 s   5.0 s   5.0 s',
        '                  checks    1  5.1 s   5.1 s   5.1 s',
        '                  marker    1  6.0 s   6.0 s   6.0 s',
        '  x86_64/ovmf     firmware  2  300 ms  310 ms  310 ms',
        '                  kernel    2  4.0 s   4.2 s   4.2 s',
        '                  init      2  7.0 s   7.3 s   7.3 s',
        '                  checks    2  7.1 s   7.4 s   7.4 s',
        '                  marker    2  8.0 s   8.4 s   8.4 s',
        'flaky (same ISO, same firmware, different verdicts):',
        '  x86_64/seabios on ISO 0123456789ab: 1 PASS, 1 FAIL in 2 boots',
        'failure buckets (one sample log each):',
        '  FAIL boot-panic: 1 boot (#3); sample #3 x86_64/seabios at stage kernel: kernel panic: Kernel panic - not syncing: No working init found',
        '    log: x86_64/seabios/002/seabios.serial.log',
        '    | Run /bin/sh as init process',
        '    | Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.',
        '    | Kernel Offset: 0x2fa00000 & <disabled>',
        'stopped early (--until-fail): boot #3 was FAIL boot-panic; 2 boots not started, 1 boot already running finished',
        '',
      ].join('\n'),
    );
  });

  it('writes JUnit XML: a suite per arch/firmware, a case per boot, escaped failure with the log tail, skipped boots', () => {
    const r = fixedRun();
    expect(junitXml(summarizeLab(r), tailsOf(r))).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="clawos-build boot lab x86_64" tests="6" failures="1" errors="0" skipped="2" time="31.000" timestamp="2025-11-21T10:00:00">',
        '  <testsuite name="x86_64/seabios" tests="3" failures="1" errors="0" skipped="1" time="9.500" timestamp="2025-11-21T10:00:00">',
        '    <properties>',
        '      <property name="iso" value="clawos-x86_64.iso"/>',
        `      <property name="iso_sha256" value="${'0123456789abcdef'.repeat(4)}"/>`,
        '      <property name="firmware_kind" value="bios"/>',
        '      <property name="accel" value="tcg"/>',
        '      <property name="accel_note" value="KVM probe failed: no kernel output in 15 s; using TCG"/>',
        '      <property name="timeout_s" value="240"/>',
        '    </properties>',
        '    <testcase classname="boot.x86_64.seabios" name="boot 1 (round 1)" time="6.500"/>',
        '    <testcase classname="boot.x86_64.seabios" name="boot 3 (round 2)" time="3.000">',
        '      <failure type="FAIL boot-panic" message="kernel panic: Kernel panic - not syncing: No working init found">FAIL boot-panic at stage kernel: kernel panic: Kernel panic - not syncing: No working init found',
        'record: x86_64/seabios/002/seabios.json',
        'serial log: x86_64/seabios/002/seabios.serial.log',
        'last 3 lines of the serial log:',
        'Run /bin/sh as init process',
        'Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.',
        'Kernel Offset: 0x2fa00000 &amp; &lt;disabled&gt;</failure>',
        '    </testcase>',
        '    <testcase classname="boot.x86_64.seabios" name="boot 5 (round 3)" time="0.000">',
        '      <skipped message="not started: --until-fail stopped after boot 3"/>',
        '    </testcase>',
        '  </testsuite>',
        '  <testsuite name="x86_64/ovmf" tests="3" failures="0" errors="0" skipped="1" time="18.500" timestamp="2025-11-21T10:00:00">',
        '    <properties>',
        '      <property name="iso" value="clawos-x86_64.iso"/>',
        `      <property name="iso_sha256" value="${'0123456789abcdef'.repeat(4)}"/>`,
        '      <property name="firmware_kind" value="uefi"/>',
        '      <property name="accel" value="tcg"/>',
        '      <property name="accel_note" value="KVM probe failed: no kernel output in 15 s; using TCG"/>',
        '      <property name="timeout_s" value="240"/>',
        '    </properties>',
        '    <testcase classname="boot.x86_64.ovmf" name="boot 2 (round 1)" time="9.000"/>',
        '    <testcase classname="boot.x86_64.ovmf" name="boot 4 (round 2)" time="9.500"/>',
        '    <testcase classname="boot.x86_64.ovmf" name="boot 6 (round 3)" time="0.000">',
        '      <skipped message="not started: --until-fail stopped after boot 3"/>',
        '    </testcase>',
        '  </testsuite>',
        '</testsuites>',
        '',
      ].join('\n'),
    );
  });

  it('escapes what XML cannot carry: markup, quotes, ANSI escapes, NUL and other controls', async () => {
    expect(xmlText('a<b>&c ]]> \x1b[0;30;47mWelcome\x1b[0m\x00\x07 end')).toBe('a&lt;b&gt;&amp;c ]]&gt; Welcome end');
    expect(xmlAttr('say "hi" & \'bye\'\nnext\tcol')).toBe('say &quot;hi&quot; &amp; &apos;bye&apos;&#10;next&#9;col');
    // A lone surrogate is not a character XML allows either.
    expect(xmlText('x\uD800y')).toBe('x\uFFFDy');
    // And a whole report with such a tail parses as XML.
    const r = fixedRun();
    r.boots[2]!.log_tail = ['\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS', 'NUL\x00here <script>&amp;</script> ]]>', 'bell\x07 and \x0c form feed', 'emoji 🐧 stays'];
    r.boots[2]!.record!.message = 'a "quoted" <message> & more';
    const d = await dir({ unsafeCleanup: true });
    tmp = d;
    const f = join(d.path, 'junit.xml');
    await writeFile(f, junitXml(summarizeLab(r), tailsOf(r)));
    const py = await run(
      ['python3', '-c', 'import sys, xml.etree.ElementTree as ET; t = ET.parse(sys.argv[1]); f = t.find(".//failure"); print(f.get("message")); print(f.text.splitlines()[-1])', f],
      { captureStdout: true },
    );
    expect(py.ok).toBe(true);
    expect(py.stdout).toBe('a "quoted" <message> & more\nemoji 🐧 stays\n');
  });
});

// ------------------------------------------------------------- fake QEMU

/** A throwaway repo whose guest is expected to report no named checks (the recorded captures predate them). */
async function labRepo(): Promise<TestRepo> {
  repo = await makeTestRepo('gates: []\n');
  await repo.write('buildroot-external/board/clawos/checks.yaml', 'checks: []\n');
  return repo;
}

async function fakeIso(): Promise<string> {
  tmp = await dir({ unsafeCleanup: true });
  const iso = join(tmp.path, 'clawos-x86_64.iso');
  // An ISO stand-in: boot checks the ISO 9660 signature ("CD001" at 0x8001); the fake QEMU never reads the rest.
  const b = Buffer.alloc(0x8800);
  b.write('CD001', 0x8001, 'latin1');
  await writeFile(iso, b);
  return iso;
}

/** Which recorded serial log each round replays. */
function replay(plan: Record<number, 'pass' | 'panic' | 'hang'>) {
  return (b: PlannedBoot) => {
    const kind = plan[b.round] ?? 'pass';
    const log = kind === 'pass' ? PASS_LOG : kind === 'panic' ? PANIC_LOG : HANG_LOG;
    return { FAKE_QEMU_DELAY_MS: '1', FAKE_QEMU_LOG: log, FAKE_QEMU_HANG: kind === 'hang' ? '1' : undefined, FAKE_QEMU_TAG: `lab${process.pid}` };
  };
}

describe('boot lab with the fake QEMU replaying recorded serial logs', () => {
  it('a mixed run: bounded concurrency, every record kept, flaky reported, one sample per bucket, JUnit written', async () => {
    const iso = await fakeIso();
    const r = await labRepo();
    const out: string[] = [];
    const junitCopy = join(tmp!.path, 'ci', 'boots.xml');
    const code = await bootCommand({
      repoRoot: r.root,
      iso,
      arch: ['x86_64'],
      firmware: 'seabios',
      repeat: 6,
      jobs: 2,
      junit: junitCopy,
      buildDir: r.buildDir,
      json: false,
      print: (s) => out.push(s),
      printErr: (s) => out.push(s),
      machine: shortTimeout(x86),
      accel: TCG,
      hostCpus: 2,
      binary: FAKE,
      envFor: replay({ 3: 'panic', 5: 'hang' }),
      now: () => new Date('2025-11-21T10:00:00.000Z'),
    });
    expect(code).toBe(1);
    const text = out.join('');
    const labDir = join(r.buildDir, 'boots', '2025-11-21T10-00-00-000Z');
    const summary = JSON.parse(readFileSync(join(labDir, 'summary.json'), 'utf8'));
    expect(summary.counts).toEqual({ PASS: 4, FAIL: 1, TIMEOUT: 1, INFRA_ERROR: 0 });
    expect(summary.boots.map((b: { verdict: string }) => b.verdict)).toEqual(['PASS', 'PASS', 'FAIL', 'PASS', 'TIMEOUT', 'PASS']);
    expect(text).toContain('verdicts: 4 PASS, 1 FAIL, 1 TIMEOUT, 0 INFRA_ERROR\n');
    expect(text).toMatch(/^ {2}x86_64\/seabios on ISO [0-9a-f]{12}: 4 PASS, 1 FAIL, 1 TIMEOUT in 6 boots$/m);
    expect(text).toContain(
      '  FAIL boot-panic: 1 boot (#3); sample #3 x86_64/seabios at stage kernel: kernel panic: Kernel panic - not syncing: No working init found\n    log: x86_64/seabios/003/seabios.serial.log\n',
    );
    expect(text).toContain('  TIMEOUT boot-timeout: 1 boot (#5); sample #5 x86_64/seabios at stage firmware: timed out at stage firmware, last output: Booting from ROM...\n');
    expect(text).toContain('    | Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.\n');
    expect(text).toContain('timeout: 8 s (x86_64 tcg timeout_s; 2 boot(s) at once on 2 host CPU(s) need no scaling)\n');
    // Every boot's record and serial log, as the boot left them.
    for (let round = 1; round <= 6; round++) {
      const d = join(labDir, 'x86_64', 'seabios', `00${round}`);
      expect(JSON.parse(readFileSync(join(d, 'seabios.json'), 'utf8')).verdict).toBe(summary.boots[round - 1].verdict);
    }
    expect(readFileSync(join(labDir, 'x86_64/seabios/001/seabios.serial.log'), 'utf8')).toBe(readFileSync(PASS_LOG, 'utf8'));
    expect(summary.failure_buckets.map((b: { verdict: string; reason: string; boots: number[] }) => [b.verdict, b.reason, b.boots])).toEqual([
      ['FAIL', 'boot-panic', [3]],
      ['TIMEOUT', 'boot-timeout', [5]],
    ]);
    expect(summary.groups[0].stages.kernel.n).toBe(5);
    expect(summary.groups[0].stages.marker.n).toBe(4);
    const xml = readFileSync(join(labDir, 'junit.xml'), 'utf8');
    expect(readFileSync(junitCopy, 'utf8')).toBe(xml);
    expect(xml).toContain('<testsuite name="x86_64/seabios" tests="6" failures="2" errors="0" skipped="0"');
    expect(xml).toContain('<failure type="TIMEOUT boot-timeout" message="timed out at stage firmware, last output: Booting from ROM...">');
  }, 60_000);

  it('never runs more than --jobs boots at once, and does run that many', async () => {
    const iso = await fakeIso();
    const events: LabEvent[] = [];
    const labDir = join(tmp!.path, 'lab');
    const res = await runBootLab({
      machine: x86,
      variants: x86.variants.filter((v) => v.name === 'seabios'),
      iso,
      isoSha256: 'f'.repeat(64),
      repeat: 6,
      jobs: 3,
      untilFail: false,
      labDir,
      expectedChecks: [],
      accel: TCG,
      hostCpus: 2,
      binary: FAKE,
      envFor: replay({}),
      onEvent: (e) => events.push(e),
    });
    const peak = Math.max(...events.filter((e) => e.type === 'start').map((e) => e.running));
    expect(peak).toBe(3);
    expect(res.timeout).toMatchObject({ seconds: 360, factor: 1.5 });
    expect(summarizeLab(res)).toMatchObject({ ok: true, run: 6, flaky: [], failure_buckets: [] });
  }, 60_000);

  it('--until-fail stops scheduling after the first failing boot; the rest are reported as not started', async () => {
    const iso = await fakeIso();
    const r = await labRepo();
    const out: string[] = [];
    const code = await bootCommand({
      repoRoot: r.root,
      iso,
      arch: ['x86_64'],
      firmware: 'seabios',
      repeat: 10,
      jobs: 1,
      untilFail: true,
      buildDir: r.buildDir,
      json: true,
      print: (s) => out.push(s),
      printErr: (s) => out.push(s),
      machine: shortTimeout(x86),
      accel: TCG,
      hostCpus: 2,
      binary: FAKE,
      envFor: replay({ 3: 'panic' }),
    });
    expect(code).toBe(1);
    const doc = JSON.parse(out.join(''));
    expect(doc).toMatchObject({ ok: false, exit_code: 1, planned: 10, run: 3, not_started: 7, stopped_early: { after_boot: 3, verdict: 'FAIL', reason: 'boot-panic', in_flight: 0 } });
    expect(doc.boots.slice(3).every((b: { verdict: string }) => b.verdict === 'NOT_STARTED')).toBe(true);
    expect(existsSync(join(doc.lab_dir, 'x86_64/seabios/004'))).toBe(false);
    const xml = readFileSync(doc.junit_file, 'utf8');
    expect(xml.match(/<skipped message="not started: --until-fail stopped after boot 3"\/>/g)).toHaveLength(7);
  }, 60_000);

  it('only host failures: INFRA_ERROR, exit 4, an <error> in JUnit', async () => {
    const iso = await fakeIso();
    const r = await labRepo();
    const out: string[] = [];
    const code = await bootCommand({
      repoRoot: r.root,
      iso,
      arch: ['x86_64'],
      firmware: 'seabios',
      repeat: 2,
      jobs: 2,
      buildDir: r.buildDir,
      json: true,
      print: (s) => out.push(s),
      printErr: () => {},
      machine: x86,
      accel: TCG,
      hostCpus: 2,
      binary: FAKE,
      envFor: () => ({ FAKE_QEMU_FAIL: "-drive if=pflash: Could not open '/nonexistent': No such file or directory" }),
    });
    expect(code).toBe(4);
    const doc = JSON.parse(out.join(''));
    expect(doc.counts).toEqual({ PASS: 0, FAIL: 0, TIMEOUT: 0, INFRA_ERROR: 2 });
    expect(doc.failure_buckets[0].sample.message).toBe(
      `${FAKE} exited with status 1 before any guest output: fake-qemu: -drive if=pflash: Could not open '/nonexistent': No such file or directory`,
    );
    expect(readFileSync(doc.junit_file, 'utf8')).toContain('<error type="INFRA_ERROR infra"');
  }, 60_000);

  it('refuses --until-fail without a --repeat cap, and a firmware kind the arch lacks', async () => {
    const iso = await fakeIso();
    const base = { repoRoot: REPO, iso, buildDir: join(tmp!.path, 'b'), json: false, print: () => {}, printErr: () => {}, jobs: 1, accel: TCG };
    await expect(bootCommand({ ...base, arch: ['x86_64'], repeat: 1, untilFail: true })).rejects.toThrow(
      '--until-fail needs --repeat N (N > 1): the most rounds to run while no boot fails',
    );
    await expect(bootCommand({ ...base, arch: ['aarch64'], repeat: 1, firmware: 'bios' })).rejects.toThrow('aarch64 has no bios boot variant');
    // G-06's rule: with no Secure Boot key in the key dir, a Secure Boot variant is NOT_CONFIGURED, never booted.
    const noKeys = join(tmp!.path, 'no-keys');
    await expect(bootCommand({ ...base, arch: ['x86_64'], repeat: 1, firmware: 'ovmf-secureboot', machine: x86, keyDir: noKeys })).rejects.toThrow(
      'nothing to boot: ovmf-secureboot: NOT_CONFIGURED: no Secure Boot key in the key dir, so no signed UKI to boot',
    );
  });

  it('an interrupt stops the running boots (their process groups killed) and starts no more: exit 130', async () => {
    const iso = await fakeIso();
    const ac = new AbortController();
    const started: string[] = [];
    const replayed = (b: PlannedBoot) => join(tmp!.path, `replayed-${process.pid}-${b.index}`);
    const untilReplayed = async (files: string[]) => {
      for (let i = 0; i < 300 && !files.every((f) => existsSync(f)); i++) await sleep(100);
    };
    const res = await runBootLab({
      machine: x86,
      variants: x86.variants.filter((v) => v.name === 'seabios'),
      iso,
      isoSha256: 'e'.repeat(64),
      repeat: 4,
      jobs: 2,
      untilFail: false,
      labDir: join(tmp!.path, 'lab'),
      expectedChecks: [],
      accel: TCG,
      hostCpus: 2,
      binary: FAKE,
      envFor: (b) => ({ ...replay({ 1: 'hang', 2: 'hang', 3: 'hang', 4: 'hang' })(b), FAKE_QEMU_REPLAYED: replayed(b) }),
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type !== 'start') return;
        started.push(replayed(e.boot));
        // Interrupt once both running boots have printed their firmware output (not after a fixed delay: a busy machine starts them late).
        if (e.running === 2) void untilReplayed(started).then(() => sleep(500)).then(() => ac.abort());
      },
    });
    const s = summarizeLab(res);
    expect(s).toMatchObject({ interrupted: true, run: 2, not_started: 2, counts: { TIMEOUT: 2 } });
    expect(s.boots[0]!.message).toMatch(/^aborted: timed out at stage firmware/);
    expect(labExitCode(s)).toBe(130);
    expect(formatLabSummary(s)).toContain('\ninterrupted: 2 boots not started\n');
  }, 60_000);

  it('plans rounds in order with zero-padded directories', () => {
    const p = planBoots('/lab', 'x86_64', x86.variants, 2);
    const names = ['seabios', 'ovmf', 'ovmf-secureboot', 'usb-bios', 'usb-uefi'];
    expect(x86.variants.map((v) => v.name)).toEqual(names);
    expect(p.map((b) => [b.index, b.round, b.variant.name, b.dir])).toEqual(
      [1, 2].flatMap((round) => names.map((n, i) => [(round - 1) * names.length + i + 1, round, n, `/lab/x86_64/${n}/00${round}`])),
    );
    expect(p[6]!.dir).toBe('/lab/x86_64/ovmf/002');
  });
});
