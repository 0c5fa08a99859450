import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadMachine } from '../../qemu/machine.js';
import { loadArches } from '../catalog/arch.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import {
  floorMachine,
  formatFloorMarkdown,
  formatFloorTable,
  interleavePlan,
  runBootFloorBench,
  spread,
  stageSplit,
  summarizeFloor,
  type BootFloorResult,
  type FloorSample,
} from './boot-floor-bench.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');
const FAKE_QEMU = join(REPO, 'test', 'fakes', 'fake-qemu');
const tmp = useTmpDirs();

const VARIANTS = [
  { name: 'seabios', description: 'legacy BIOS', firmware_kind: 'bios' as const },
  { name: 'ovmf', description: 'UEFI', firmware_kind: 'uefi' as const },
];

/** A PASS sample; times in ms from QEMU start. */
const pass = (variant: string, mode: 'iso' | 'floor', round: number, t: { kernel: number; init: number; marker: number }): FloorSample => ({
  round,
  variant,
  mode,
  verdict: 'PASS',
  message: '',
  stage_ms: { firmware: 700, kernel: t.kernel, init: t.init, checks: t.init + 100, marker: t.marker },
  marker_ms: t.marker,
  serial_log: `${variant}/${mode}-${round}/${variant}.serial.log`,
});

describe('the interleaving plan', () => {
  it('boots each variant ISO then floor, round by round', () => {
    expect(interleavePlan(['seabios', 'ovmf'], 2).map((b) => `${b.round}:${b.variant}:${b.mode}`)).toEqual([
      '1:seabios:iso',
      '1:seabios:floor',
      '1:ovmf:iso',
      '1:ovmf:floor',
      '2:seabios:iso',
      '2:seabios:floor',
      '2:ovmf:iso',
      '2:ovmf:floor',
    ]);
    expect(interleavePlan(['uefi-acpi'], 0)).toEqual([]);
  });
});

describe('the figures', () => {
  it('gives median, min and max, and nothing for no sample', () => {
    expect(spread([5300, 4900, 6100])).toEqual({ n: 3, median: 5300, min: 4900, max: 6100 });
    expect(spread([4000, 5000])).toEqual({ n: 2, median: 4500, min: 4000, max: 5000 });
    expect(spread([])).toBeNull();
  });

  it('splits a boot into firmware-to-kernel, kernel-to-init and init-to-marker', () => {
    expect(stageSplit({ firmware: 700, kernel: 3200, init: 4100, checks: 4200, marker: 5300 })).toEqual({ to_kernel_ms: 3200, kernel_ms: 900, init_ms: 1200 });
    // A direct boot shows no firmware banner; a boot that never reached init has no init split.
    expect(stageSplit({ firmware: null, kernel: 900, init: null, checks: null, marker: null })).toEqual({ to_kernel_ms: 900, kernel_ms: null, init_ms: null });
  });

  it('compares the medians per variant, with the ratio of each round, and the goal at 1.2x inclusive', () => {
    const samples = [
      pass('seabios', 'iso', 1, { kernel: 2000, init: 3000, marker: 6000 }),
      pass('seabios', 'floor', 1, { kernel: 1000, init: 2000, marker: 5000 }),
      pass('seabios', 'iso', 2, { kernel: 2400, init: 3400, marker: 6600 }),
      pass('seabios', 'floor', 2, { kernel: 1200, init: 2200, marker: 5500 }),
      pass('seabios', 'iso', 3, { kernel: 2200, init: 3200, marker: 6300 }),
      pass('seabios', 'floor', 3, { kernel: 1100, init: 2100, marker: 5250 }),
      pass('ovmf', 'iso', 1, { kernel: 8000, init: 9000, marker: 12100 }),
      pass('ovmf', 'floor', 1, { kernel: 6000, init: 7000, marker: 10000 }),
    ];
    const [sea, ovmf] = summarizeFloor(samples, VARIANTS);
    expect(sea).toMatchObject({
      variant: 'seabios',
      firmware_kind: 'bios',
      iso: { marker: { n: 3, median: 6300, min: 6000, max: 6600 }, stages: { to_kernel_ms: 2200, kernel_ms: 1000, init_ms: 3100 }, passed: 3, failures: [] },
      floor: { marker: { n: 3, median: 5250, min: 5000, max: 5500 }, stages: { to_kernel_ms: 1100, kernel_ms: 1000, init_ms: 3150 }, passed: 3 },
      ratio: 1.2,
      round_ratios: { n: 3, median: 1.2, min: 1.2, max: 1.2 },
      meets_goal: true,
    });
    expect(ovmf!.ratio).toBeCloseTo(1.21, 10);
    expect(ovmf!.meets_goal).toBe(false);
  });

  it('counts only PASS boots, names the others, and has no ratio without a floor', () => {
    const failed: FloorSample = {
      ...pass('seabios', 'floor', 1, { kernel: 1000, init: 2000, marker: 5000 }),
      verdict: 'FAIL',
      message: 'check secureboot failed',
      marker_ms: null,
    };
    const [sea, ovmf] = summarizeFloor([pass('seabios', 'iso', 1, { kernel: 2000, init: 3000, marker: 6000 }), failed], VARIANTS);
    expect(sea).toMatchObject({ floor: { marker: null, passed: 0, failures: ['round 1: FAIL: check secureboot failed'] }, ratio: null, round_ratios: null, meets_goal: false });
    expect(ovmf).toMatchObject({ iso: { marker: null, passed: 0, failures: [] }, ratio: null, meets_goal: false });
  });
});

const RESULT: BootFloorResult = {
  arch: 'x86_64',
  accel: 'tcg',
  accel_note: 'KVM probe failed',
  runs: 3,
  goal: 1.2,
  started_at: '2026-12-06T07:40:00.000Z',
  media: { iso: '/b/x.iso', iso_sha256: 'a'.repeat(64), kernel: '/b/vmlinuz', kernel_sha256: 'b'.repeat(64), initramfs: '/b/i', initramfs_sha256: 'c'.repeat(64) },
  floor_append: '',
  qemu_version: '7.2.22',
  samples: [],
  variants: summarizeFloor(
    [
      pass('seabios', 'iso', 1, { kernel: 2000, init: 3000, marker: 6000 }),
      pass('seabios', 'floor', 1, { kernel: 1000, init: 2000, marker: 5000 }),
      pass('seabios', 'iso', 2, { kernel: 2400, init: 3400, marker: 6600 }),
      pass('seabios', 'floor', 2, { kernel: 1200, init: 2200, marker: 5500 }),
      pass('ovmf', 'iso', 1, { kernel: 8000, init: 9000, marker: 13000 }),
      { ...pass('ovmf', 'floor', 1, { kernel: 1, init: 2, marker: 3 }), verdict: 'TIMEOUT', message: 'no marker in 240 s', marker_ms: null },
    ],
    VARIANTS,
  ),
  ok: false,
  interrupted: false,
};

describe('the printed figures', () => {
  it('prints one row per variant with the ratio, its spread per round, the goal and the stage split', () => {
    expect(formatFloorTable(RESULT)).toBe(
      [
        'x86_64: ISO boot against the floor (the same kernel and initramfs with -kernel/-initrd, same firmware, machine and accelerator: tcg), median of 3 boot(s) each, interleaved',
        'boot            ISO to marker    floor to marker  ISO/floor  per round  goal <= 1.2x  to kernel ISO/floor  kernel to init  init to marker',
        'x86_64/seabios  6.3 s (6.0–6.6)  5.3 s (5.0–5.5)  1.20x      1.20–1.20  ok            2.2 s / 1.1 s        1.0 s / 1.0 s   3.1 s / 3.1 s',
        'x86_64/ovmf     13.0 s           n/a              n/a        n/a        NO FIGURE     8.0 s / n/a          1.0 s / n/a     4.0 s / n/a',
        'boots without a figure:',
        '  x86_64/ovmf floor: round 1: TIMEOUT: no marker in 240 s',
      ].join('\n'),
    );
  });

  it('gives the README a dated Markdown table', () => {
    expect(formatFloorMarkdown([RESULT])).toBe(
      [
        'Time to the final marker, 2026-12-06, tcg, median (min–max) of 3 boot(s) per mode, ISO and floor interleaved (`clawos-build bench boot`):',
        '',
        '| boot | ISO to marker | floor to marker | ISO/floor | <= 1.2x | to kernel, ISO / floor |',
        '|---|---|---|---|---|---|',
        '| x86_64 seabios | 6.3 s (6.0–6.6) | 5.3 s (5.0–5.5) | 1.20x | yes | 2.2 s / 1.1 s |',
        '| x86_64 ovmf | 13.0 s | n/a | n/a | no | 8.0 s / n/a |',
        '',
      ].join('\n'),
    );
  });
});

describe('the floor machine', () => {
  it("keeps the variant's own firmware and devices, with a variant's own {iso} filled in", async () => {
    const arch = (await loadArches(REPO)).get('x86_64')!;
    const m = await loadMachine(REPO, arch.qemu);
    const stick = { ...m.variants[0]!, name: 'test-stick', args: ['-drive', 'if=none,id=stick,format=raw,readonly=on,file={iso}', '-device', 'usb-storage,drive=stick'] };
    const f = floorMachine({ ...m, variants: [...m.variants, stick] }, '/b/a,b.iso');
    expect(f.variants.find((v) => v.name === 'test-stick')!.args).toEqual(['-drive', 'if=none,id=stick,format=raw,readonly=on,file=/b/a,,b.iso', '-device', 'usb-storage,drive=stick']);
    expect(f.variants.find((v) => v.name === 'ovmf')!.args).toEqual(m.variants.find((v) => v.name === 'ovmf')!.args);
  });
});

describe('runBootFloorBench', () => {
  it('boots the ISO and the floor alternately with the same firmware, machine and accelerator, from replayed real captures', async () => {
    const d = await tmp();
    const argsFile = join(d, 'args');
    const arch = (await loadArches(REPO)).get('x86_64')!;
    const machine = await loadMachine(REPO, arch.qemu);
    const seen: string[] = [];
    const signedKernel = join(d, 'ovmf.floor-kernel.signed.efi');
    await writeFile(signedKernel, 'signed');
    const r = await runBootFloorBench({
      machine,
      // The two variants the replayed captures are of.
      variants: machine.variants.filter((v) => v.name === 'seabios' || v.name === 'ovmf'),
      iso: join(LOGS, 'x86_64-iso-seabios-pass.log'),
      kernel: join(LOGS, 'x86_64-kernel-direct-pass.log'),
      initramfs: join(LOGS, 'x86_64-panic-no-initramfs.log'),
      append: 'quiet-not',
      // As bench.ts gives a Secure Boot variant: its own (signed) floor kernel.
      floorKernel: { ovmf: signedKernel },
      accel: 'tcg',
      accelNote: 'test',
      runs: 1,
      expectedChecks: [],
      outDir: join(d, 'bench'),
      media: RESULT.media,
      binary: FAKE_QEMU,
      // The ISO boots replay a real ISO capture of the variant, the floor boots a real -kernel capture.
      envFor: (b) => ({
        FAKE_QEMU_ARGS_FILE: argsFile,
        FAKE_QEMU_DELAY_MS: '1',
        FAKE_QEMU_LOG: join(LOGS, b.mode === 'iso' ? `x86_64-iso-${b.variant}-pass.log` : 'x86_64-kernel-direct-pass.log'),
      }),
      onBoot: (s) => seen.push(`${s.round}:${s.variant}:${s.mode}:${s.verdict}`),
      settleMs: 50,
    });
    expect(seen).toEqual(['1:seabios:iso:PASS', '1:seabios:floor:PASS', '1:ovmf:iso:PASS', '1:ovmf:floor:PASS']);
    expect(r.variants.map((v) => [v.variant, v.iso.passed, v.floor.passed, v.ratio !== null])).toEqual([
      ['seabios', 1, 1, true],
      ['ovmf', 1, 1, true],
    ]);
    // Stage times in order on every boot (the ISO captures show the firmware banner first).
    expect(r.samples.filter((s) => s.mode === 'iso').every((s) => s.stage_ms.firmware !== null && s.stage_ms.kernel! >= s.stage_ms.firmware)).toBe(true);
    expect(r.samples.every((s) => s.marker_ms !== null && s.marker_ms >= s.stage_ms.init! && s.stage_ms.init! >= s.stage_ms.kernel!)).toBe(true);
    expect(r.samples[0]!.serial_log).toBe('seabios/iso-1/seabios.serial.log');
    expect(await readFile(join(d, 'bench', 'seabios', 'iso-1', 'seabios.serial.log'), 'utf8')).toContain('CLAWOS-BOOT-OK');
    // The timed copy: seconds since the boot began, then the line without its escapes.
    const timed = (await readFile(join(d, 'bench', 'ovmf', 'iso-1', 'ovmf.timed.log'), 'utf8')).split('\n');
    expect(timed[0]).toMatch(/^ +\d+\.\d\d BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM QM00005 " from /);
    expect(timed.filter((l) => / CLAWOS-BOOT-OK$/.test(l))).toHaveLength(1);

    const boots = (await readFile(argsFile, 'utf8')).split('--\n').filter(Boolean).map((b) => b.trim().split('\n'));
    expect(boots).toHaveLength(4);
    const opt = (argv: string[], o: string) => argv[argv.indexOf(o) + 1];
    for (const [i, argv] of boots.entries()) {
      const variant = machine.variants[Math.floor(i / 2) % 2]!;
      // Same machine, memory, CPU and accelerator either way; the variant's own firmware either way.
      expect([opt(argv, '-machine'), opt(argv, '-m'), opt(argv, '-accel'), opt(argv, '-cpu')]).toEqual([machine.machine, machine.memory, 'tcg', 'max']);
      expect(argv.filter((a) => a.startsWith('if=pflash')).length).toBe(variant.name === 'ovmf' ? 2 : 0);
      if (i % 2 === 0) {
        expect(opt(argv, '-cdrom')).toBe(join(LOGS, 'x86_64-iso-seabios-pass.log'));
        expect(argv).not.toContain('-kernel');
      } else {
        expect(argv).not.toContain('-cdrom');
        expect(opt(argv, '-kernel')).toBe(variant.name === 'ovmf' ? signedKernel : join(LOGS, 'x86_64-kernel-direct-pass.log'));
        expect(opt(argv, '-initrd')).toBe(join(LOGS, 'x86_64-panic-no-initramfs.log'));
        expect(opt(argv, '-append')).toBe('console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 quiet-not');
      }
    }
  }, 120_000);
});
