/**
 * The boot-time floor (issue 14, item 6): how much slower the ISO boots than
 * the same kernel and initramfs handed to the same firmware by QEMU itself
 * (`-kernel`/`-initrd`, qemu data `direct_kernel`), on the same machine,
 * memory and accelerator. The difference is what the ISO path adds: the
 * firmware finding and reading the boot medium, a boot loader, any menu wait.
 *
 * Every boot variant of the arch's qemu data is measured, so a variant added
 * there is benched with no code change. ISO and floor boots alternate
 * (round by round: ISO, floor, ISO, floor ...) so host load hits both; the
 * figures are medians with their spread, and the headline is a ratio, which a
 * noisy host disturbs less than absolute seconds.
 */
import { join } from 'node:path';
import type { Runner } from '../../lib/proc.js';
import { bootIso, type BootRecord } from '../../qemu/boot.js';
import { stripAnsi, type StageTimes } from '../../qemu/classify-boot.js';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import type { BootVariant, QemuMachine } from '../../qemu/machine.js';
import { median } from './stock-bench.js';

export type BootMode = 'iso' | 'floor';
export const BOOT_MODES: readonly BootMode[] = ['iso', 'floor'];

/** The goal: time to the final marker within 1.2x of the floor. */
export const FLOOR_GOAL = 1.2;

export interface PlannedFloorBoot {
  /** 1-based. */
  round: number;
  variant: string;
  mode: BootMode;
}

/**
 * The order of the boots: round by round, each variant's ISO boot right before
 * its floor boot (A B A B), so a load swing on the host lands on both modes of
 * a variant within seconds of each other.
 */
export function interleavePlan(variants: readonly string[], runs: number): PlannedFloorBoot[] {
  const plan: PlannedFloorBoot[] = [];
  for (let round = 1; round <= runs; round++) {
    for (const variant of variants) for (const mode of BOOT_MODES) plan.push({ round, variant, mode });
  }
  return plan;
}

export interface FloorSample extends PlannedFloorBoot {
  verdict: BootRecord['verdict'];
  /** Why a non-PASS boot failed, as the boot record says it. */
  message: string;
  stage_ms: StageTimes;
  /** ms from QEMU start to the final marker; null unless the boot PASSed. */
  marker_ms: number | null;
  /** Relative to the bench dir; beside it, <variant>.timed.log: each line with its seconds since the boot began. */
  serial_log: string;
}

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly number[]): Spread | null {
  const m = median(xs);
  if (m === null) return null;
  return { n: xs.length, median: m, min: Math.min(...xs), max: Math.max(...xs) };
}

/**
 * Where one boot's time went, from the classifier's stage times: QEMU start to
 * the kernel's first console line (firmware, boot loader, loading), kernel to
 * init, init to the final marker (the in-guest checks). null where a stage
 * was not seen.
 */
export interface StageSplit {
  to_kernel_ms: number | null;
  kernel_ms: number | null;
  init_ms: number | null;
}

export function stageSplit(t: StageTimes): StageSplit {
  const diff = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);
  return { to_kernel_ms: t.kernel, kernel_ms: diff(t.kernel, t.init), init_ms: diff(t.init, t.marker) };
}

export interface ModeFigures {
  /** Time to the final marker over the PASS boots. */
  marker: Spread | null;
  /** Medians of each part of stageSplit over the PASS boots. */
  stages: { [K in keyof StageSplit]: number | null };
  passed: number;
  /** "round 2: FAIL: ..." for each boot that did not PASS. */
  failures: string[];
}

export interface VariantFigures {
  variant: string;
  description: string;
  firmware_kind: string | null;
  iso: ModeFigures;
  floor: ModeFigures;
  /** median ISO / median floor; null when either side has no PASS boot. */
  ratio: number | null;
  /** ISO / floor of each round where both PASSed: how much the ratio moves with the host's load. */
  round_ratios: Spread | null;
  goal: number;
  meets_goal: boolean;
}

function modeFigures(samples: readonly FloorSample[]): ModeFigures {
  const passed = samples.filter((s) => s.marker_ms !== null);
  const splits = passed.map((s) => stageSplit(s.stage_ms));
  const med = (k: keyof StageSplit) => median(splits.map((x) => x[k]).filter((v): v is number => v !== null));
  return {
    marker: spread(passed.map((s) => s.marker_ms!)),
    stages: { to_kernel_ms: med('to_kernel_ms'), kernel_ms: med('kernel_ms'), init_ms: med('init_ms') },
    passed: passed.length,
    failures: samples.filter((s) => s.marker_ms === null).map((s) => `round ${s.round}: ${s.verdict}: ${s.message}`),
  };
}

/** Per variant (in the given order): both modes' figures, the ratio and the goal. */
export function summarizeFloor(samples: readonly FloorSample[], variants: readonly Pick<BootVariant, 'name' | 'description' | 'firmware_kind'>[], goal = FLOOR_GOAL): VariantFigures[] {
  return variants.map((v) => {
    const mine = samples.filter((s) => s.variant === v.name);
    const iso = modeFigures(mine.filter((s) => s.mode === 'iso'));
    const floor = modeFigures(mine.filter((s) => s.mode === 'floor'));
    const ratio = iso.marker && floor.marker && floor.marker.median > 0 ? iso.marker.median / floor.marker.median : null;
    const rounds: number[] = [];
    for (const a of mine.filter((s) => s.mode === 'iso' && s.marker_ms !== null)) {
      const b = mine.find((s) => s.mode === 'floor' && s.round === a.round && s.marker_ms !== null);
      if (b && b.marker_ms! > 0) rounds.push(a.marker_ms! / b.marker_ms!);
    }
    return {
      variant: v.name,
      description: v.description,
      firmware_kind: v.firmware_kind ?? null,
      iso,
      floor,
      ratio,
      round_ratios: spread(rounds),
      goal,
      meets_goal: ratio !== null && ratio <= goal,
    };
  });
}

export interface BootFloorResult {
  arch: string;
  accel: string;
  accel_note: string;
  runs: number;
  goal: number;
  /** When the bench started (ISO 8601), for the figures' date. */
  started_at: string;
  media: {
    iso: string;
    iso_sha256: string;
    kernel: string;
    kernel_sha256: string;
    initramfs: string;
    initramfs_sha256: string;
    /** Secure Boot variants' floor kernel: `kernel` signed with the UKI's key, per variant. */
    signed_kernels?: Record<string, { path: string; sha256: string }>;
  };
  /** The floor's kernel command line words after the machine's direct_kernel ones. */
  floor_append: string;
  qemu_version: string | null;
  variants: VariantFigures[];
  samples: FloorSample[];
  /** Every variant has figures for both modes and meets the goal. */
  ok: boolean;
  interrupted: boolean;
}

const sec = (ms: number | null | undefined) => (ms === null || ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(1)} s`);
const ratioText = (r: number | null) => (r === null ? 'n/a' : `${r.toFixed(2)}x`);
const spreadText = (s: Spread | null) => (s === null ? 'n/a' : s.n > 1 ? `${sec(s.median)} (${(s.min / 1000).toFixed(1)}–${(s.max / 1000).toFixed(1)})` : sec(s.median));

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

/** What `clawos-build bench boot` prints per arch. */
export function formatFloorTable(r: BootFloorResult): string {
  const rows = r.variants.map((v) => [
    `${r.arch}/${v.variant}`,
    spreadText(v.iso.marker),
    spreadText(v.floor.marker),
    ratioText(v.ratio),
    v.round_ratios && v.round_ratios.n > 1 ? `${v.round_ratios.min.toFixed(2)}–${v.round_ratios.max.toFixed(2)}` : 'n/a',
    v.meets_goal ? 'ok' : v.ratio === null ? 'NO FIGURE' : `OVER ${r.goal}x`,
    `${sec(v.iso.stages.to_kernel_ms)} / ${sec(v.floor.stages.to_kernel_ms)}`,
    `${sec(v.iso.stages.kernel_ms)} / ${sec(v.floor.stages.kernel_ms)}`,
    `${sec(v.iso.stages.init_ms)} / ${sec(v.floor.stages.init_ms)}`,
  ]);
  const failures = r.variants.flatMap((v) => BOOT_MODES.flatMap((m) => v[m].failures.map((f) => `  ${r.arch}/${v.variant} ${m}: ${f}`)));
  return [
    `${r.arch}: ISO boot against the floor (the same kernel and initramfs with -kernel/-initrd, same firmware, machine and accelerator: ${r.accel}), median of ${r.runs} boot(s) each, interleaved`,
    ...table(['boot', 'ISO to marker', 'floor to marker', 'ISO/floor', 'per round', `goal <= ${r.goal}x`, 'to kernel ISO/floor', 'kernel to init', 'init to marker'], rows),
    ...(failures.length ? ['boots without a figure:', ...failures] : []),
  ].join('\n');
}

/** The figures as a Markdown table the README and docs quote (with the date of the run). */
export function formatFloorMarkdown(results: readonly BootFloorResult[]): string {
  const date = results[0]?.started_at.slice(0, 10) ?? '';
  const accel = [...new Set(results.map((r) => r.accel))].join(', ');
  const runs = [...new Set(results.map((r) => r.runs))].join(', ');
  const rows = results.flatMap((r) =>
    r.variants.map((v) => [
      `${r.arch} ${v.variant}`,
      spreadText(v.iso.marker),
      spreadText(v.floor.marker),
      ratioText(v.ratio),
      v.meets_goal ? 'yes' : 'no',
      `${sec(v.iso.stages.to_kernel_ms)} / ${sec(v.floor.stages.to_kernel_ms)}`,
    ]),
  );
  const head = ['boot', 'ISO to marker', 'floor to marker', 'ISO/floor', `<= ${results[0]?.goal ?? FLOOR_GOAL}x`, 'to kernel, ISO / floor'];
  return [
    `Time to the final marker, ${date}, ${accel}, median (min–max) of ${runs} boot(s) per mode, ISO and floor interleaved (\`clawos-build bench boot\`):`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
  ].join('\n');
}

/**
 * The floor's variant: the variant itself (its firmware, machine and devices)
 * with any {iso} in its args already filled in, so a variant that attaches
 * the ISO its own way (a USB stick) keeps the device while QEMU's -kernel
 * boots first.
 */
export function floorMachine(m: QemuMachine, iso: string): QemuMachine {
  const fill = (a: string) => a.replace(/(=?)\{iso\}/g, (_all, eq: string) => (eq ? `=${iso.replace(/,/g, ',,')}` : iso));
  return { ...m, variants: m.variants.map((v) => ({ ...v, args: v.args.map(fill) })) };
}

export interface BootFloorOptions {
  /** The firmware-locked machine (lockMachineFirmware). */
  machine: QemuMachine;
  variants: readonly BootVariant[];
  iso: string;
  kernel: string;
  initramfs: string;
  /** Kernel command line words for the floor after direct_kernel's own (the ISO's extra words). */
  append: string;
  /**
   * The floor's kernel of a variant, when not `kernel`: a Secure Boot variant's
   * firmware verifies what -kernel hands it, so its floor boots the same kernel
   * signed with the UKI's key (bench.ts signs it).
   */
  floorKernel?: Readonly<Record<string, string>>;
  accel: string;
  accelNote: string;
  runs: number;
  goal?: number;
  expectedChecks: readonly string[];
  /** The bench dir: <variant>/<mode>-<round>/ per boot. */
  outDir: string;
  media: BootFloorResult['media'];
  signal?: AbortSignal;
  progress?: (message: string) => void;
  onBoot?: (s: FloorSample) => void;
  runner?: Runner;
  /** Tests: a fake QEMU, and its environment per boot. */
  binary?: string;
  envFor?: (b: PlannedFloorBoot) => Record<string, string | undefined> | undefined;
  settleMs?: number;
}

export async function runBootFloorBench(o: BootFloorOptions): Promise<BootFloorResult> {
  const startedAt = new Date().toISOString();
  const goal = o.goal ?? FLOOR_GOAL;
  const floor = floorMachine(o.machine, o.iso);
  const plan = interleavePlan(
    o.variants.map((v) => v.name),
    o.runs,
  );
  const samples: FloorSample[] = [];
  let qemuVersion: string | null = null;
  for (const [i, b] of plan.entries()) {
    if (o.signal?.aborted) break;
    o.progress?.(`${o.machine.arch}/${b.variant}: ${b.mode} boot, round ${b.round}/${o.runs} (${i + 1}/${plan.length}, ${o.accel})`);
    const dir = join(o.outDir, b.variant, `${b.mode}-${b.round}`);
    // Each console line with its arrival time: where the time goes, gap by gap.
    const timed: string[] = [];
    const t0 = Date.now();
    // Both modes boot exactly as the boot lab does (bootIso, one at a time, the
    // accelerator's own timeout); only the medium differs.
    const rec = await bootIso({
      machine: b.mode === 'iso' ? o.machine : floor,
      variant: b.variant,
      ...(b.mode === 'iso' ? { iso: o.iso } : { kernel: { path: o.floorKernel?.[b.variant] ?? o.kernel, initrd: o.initramfs, append: o.append } }),
      accel: o.accel,
      accelNote: o.accelNote,
      outDir: dir,
      expectedChecks: o.expectedChecks,
      signal: o.signal,
      runner: o.runner,
      binary: o.binary,
      env: o.envFor?.(b),
      settleMs: o.settleMs,
      sink: (stream, line) => {
        if (stream === 'stdout') timed.push(`${((Date.now() - t0) / 1000).toFixed(2).padStart(7)} ${stripAnsi(line)}`);
      },
    });
    await writeFileAtomic(join(dir, `${b.variant}.timed.log`), timed.join('\n') + (timed.length ? '\n' : ''));
    qemuVersion ??= rec.qemu_version;
    const s: FloorSample = {
      ...b,
      verdict: rec.verdict,
      message: rec.verdict === 'PASS' ? '' : rec.message,
      stage_ms: rec.stage_ms,
      marker_ms: rec.verdict === 'PASS' ? rec.stage_ms.marker : null,
      serial_log: join(b.variant, `${b.mode}-${b.round}`, rec.serial_log),
    };
    samples.push(s);
    o.onBoot?.(s);
  }
  const variants = summarizeFloor(samples, o.variants, goal);
  return {
    arch: o.machine.arch,
    accel: o.accel,
    accel_note: o.accelNote,
    runs: o.runs,
    goal,
    started_at: startedAt,
    media: o.media,
    floor_append: o.append,
    qemu_version: qemuVersion,
    variants,
    samples,
    ok: variants.length > 0 && variants.every((v) => v.meets_goal),
    interrupted: !!o.signal?.aborted,
  };
}
