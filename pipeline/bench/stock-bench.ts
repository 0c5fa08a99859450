/**
 * G-08 (plan P4.7): ClawOS against Debian's stock kernel on the same QEMU
 * machine, with the same initramfs. Both kernels boot `runs` times, alternated
 * so host load drifts hit both alike; the medians are compared.
 *
 * Every metric here is lower-is-better, so ClawOS's score against the
 * baseline is baseline / clawos (1.25 = ClawOS 25% better); the catalog's bar
 * is "at least 80% of the baseline", i.e. score >= bar (0.8).
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { InfraError } from '../../lib/errors.js';
import { fetchDeb, type DebContext, type FetchedDeb } from '../inputs/debs.js';
import { lockMachineFirmware } from '../boot/guest-boot.js';
import type { ArchSpec } from '../catalog/arch.js';
import { bootIso, type BootRecord } from '../../qemu/boot.js';
import { loadMachine, type QemuMachine } from '../../qemu/machine.js';
import { chooseAccelerator, type AccelDecision } from '../../qemu/kvm-probe.js';

export type KernelRole = 'clawos' | 'baseline';

export interface BenchSample {
  kernel: KernelRole;
  run: number;
  verdict: string;
  /** ms from QEMU start to the CLAWOS-INIT line; null if not reached. */
  init_ms: number | null;
  /** MemTotal - MemAvailable (KiB) as /init saw it first thing; null if not printed. */
  mem_used_kb: number | null;
  /** Build-relative (or bench-dir-relative) path of the serial log. */
  serial_log: string;
}

export interface BenchMetric {
  name: 'time_to_init_ms' | 'mem_used_kb' | 'kernel_image_bytes';
  better: 'lower';
  clawos: number | null;
  baseline: number | null;
  /** baseline / clawos; null when a side has no figure. */
  score: number | null;
  pass: boolean;
}

export interface BenchResult {
  arch: string;
  accel: string;
  runs: number;
  bar: number;
  baseline_kernel: { package: string; version: string; sha256: string; image: string };
  samples: BenchSample[];
  metrics: BenchMetric[];
  ok: boolean;
}

/** `CLAWOS-INIT arch=x86_64 mem_used_kb=1234 mem_total_kb=5678` -> 1234. */
export function memUsedFromSerial(lines: readonly string[]): number | null {
  for (const l of lines) {
    const m = /CLAWOS-INIT\b.*\bmem_used_kb=(\d+)/.exec(l);
    if (m) return Number(m[1]);
  }
  return null;
}

export function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function compareMetric(name: BenchMetric['name'], clawos: number | null, baseline: number | null, bar: number): BenchMetric {
  const score = clawos !== null && baseline !== null && clawos > 0 ? baseline / clawos : null;
  return { name, better: 'lower', clawos, baseline, score, pass: score !== null && score >= bar };
}

export function summarize(samples: readonly BenchSample[], sizes: { clawos: number; baseline: number }, bar: number): BenchMetric[] {
  const of = (k: KernelRole, f: (s: BenchSample) => number | null) =>
    median(samples.filter((s) => s.kernel === k).map(f).filter((v): v is number => v !== null));
  return [
    compareMetric('time_to_init_ms', of('clawos', (s) => s.init_ms), of('baseline', (s) => s.init_ms), bar),
    compareMetric('mem_used_kb', of('clawos', (s) => s.mem_used_kb), of('baseline', (s) => s.mem_used_kb), bar),
    compareMetric('kernel_image_bytes', sizes.clawos, sizes.baseline, bar),
  ];
}

const UNITS: Record<BenchMetric['name'], (v: number) => string> = {
  time_to_init_ms: (v) => `${(v / 1000).toFixed(2)} s`,
  mem_used_kb: (v) => `${(v / 1024).toFixed(1)} MiB`,
  kernel_image_bytes: (v) => `${(v / 1048576).toFixed(1)} MiB`,
};

/** The table `clawos-build bench` prints and G-08's bench.md holds. */
export function formatBenchTable(r: BenchResult): string {
  const rows = r.metrics.map((m) => [
    m.name,
    m.clawos === null ? 'n/a' : UNITS[m.name](m.clawos),
    m.baseline === null ? 'n/a' : UNITS[m.name](m.baseline),
    m.score === null ? 'n/a' : `${m.score.toFixed(2)}x`,
    m.pass ? 'ok' : `BELOW ${r.bar}`,
  ]);
  const head = ['metric (lower is better)', 'ClawOS', `Debian ${r.baseline_kernel.version}`, 'score', `bar ${r.bar}`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [
    `${r.arch}: ClawOS vs Debian's stock kernel (${r.baseline_kernel.package} ${r.baseline_kernel.version}), same QEMU machine (${r.accel}), same initramfs, median of ${r.runs} boots each`,
    line(head),
    ...rows.map(line),
    `score = baseline / ClawOS (higher is better for ClawOS)`,
  ].join('\n');
}

export interface BenchContext extends DebContext {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  cacheDir: string;
  log(line: string): void;
  progress(message: string): void;
  signal: AbortSignal;
}

/**
 * Debian's kernel for the arch, by the lock: the entry whose `alias` is the
 * meta package (linux-image-amd64 ...) names the versioned package, fetched
 * at its locked version; that one carries /boot/vmlinuz-<version>.
 */
export async function fetchBaselineKernel(ctx: BenchContext, arch: ArchSpec, metaPackage: string): Promise<{ deb: FetchedDeb; image: string }> {
  ctx.progress(`fetching the locked ${metaPackage}:${arch.debian_arch}`);
  const deb = await fetchDeb(ctx, arch, metaPackage);
  const boot = await readdir(join(deb.root, 'boot')).catch(() => [] as string[]);
  const image = boot.find((f) => f.startsWith('vmlinuz-') || f.startsWith('vmlinux-'));
  if (!image) throw new InfraError(`${deb.package}:${arch.debian_arch} has no /boot/vmlinuz-* (unpacked at ${deb.root})`, `delete ${deb.root} and run again`);
  return { deb, image: join(deb.root, 'boot', image) };
}

export interface RunBenchOptions {
  ctx: BenchContext;
  arch: ArchSpec;
  machine: QemuMachine;
  variant: string;
  accel: string;
  accelNote: string;
  clawosKernel: string;
  initramfs: string;
  baseline: { deb: FetchedDeb; image: string };
  runs: number;
  bar: number;
  outDir: string;
  /** Tests: a fake QEMU. */
  binary?: string;
  env?: Record<string, string | undefined>;
}

export async function runStockBench(o: RunBenchOptions): Promise<BenchResult> {
  const samples: BenchSample[] = [];
  const kernels: Array<[KernelRole, string]> = [
    ['clawos', o.clawosKernel],
    ['baseline', o.baseline.image],
  ];
  for (let run = 1; run <= o.runs && !o.ctx.signal.aborted; run++) {
    for (const [role, kernel] of kernels) {
      if (o.ctx.signal.aborted) break;
      o.ctx.progress(`${o.arch.name}: ${role} kernel, boot ${run}/${o.runs} (${o.accel})`);
      const dir = join(o.outDir, `${role}-${run}`);
      const lines: string[] = [];
      const rec: BootRecord = await bootIso({
        machine: o.machine,
        variant: o.variant,
        kernel: { path: kernel, initrd: o.initramfs },
        accel: o.accel,
        accelNote: o.accelNote,
        outDir: dir,
        // Only the timing and the memory line matter here: the stock kernel is
        // expected to fail ClawOS's hardening checks.
        expectedChecks: [],
        signal: o.ctx.signal,
        runner: o.ctx.run,
        sink: (stream, line) => {
          if (stream === 'stdout') lines.push(line);
        },
        binary: o.binary,
        env: o.env,
      });
      o.ctx.log(`stock-bench: ${role} run ${run}: ${rec.verdict} init at ${rec.stage_ms.init ?? 'never'} ms`);
      samples.push({
        kernel: role,
        run,
        verdict: rec.verdict,
        init_ms: rec.stage_ms.init,
        mem_used_kb: memUsedFromSerial(lines),
        serial_log: join(`${role}-${run}`, rec.serial_log),
      });
    }
  }
  const sizes = { clawos: (await stat(o.clawosKernel)).size, baseline: (await stat(o.baseline.image)).size };
  const metrics = summarize(samples, sizes, o.bar);
  return {
    arch: o.arch.name,
    accel: o.accel,
    runs: o.runs,
    bar: o.bar,
    baseline_kernel: { package: o.baseline.deb.package, version: o.baseline.deb.version, sha256: o.baseline.deb.sha256, image: o.baseline.image },
    samples,
    metrics,
    ok: metrics.every((m) => m.pass),
  };
}

/**
 * What G-08 and `clawos-build bench` share: fetch the arch's stock kernel, choose
 * the accelerator (the decision is cached per host boot), run the comparison.
 */
export async function benchAgainstStock(o: {
  ctx: BenchContext;
  repoRoot: string;
  arch: ArchSpec;
  kernel: string;
  initramfs: string;
  runs: number;
  bar: number;
  outDir: string;
  onAccel?: (d: AccelDecision) => void;
}): Promise<{ result: BenchResult; baseline: { deb: FetchedDeb; image: string } }> {
  const base = o.arch.baseline;
  if (!base) throw new InfraError(`specs/arch/${o.arch.name}.yaml has no baseline: section: nothing to compare ${o.arch.name} with`, 'add baseline: { kernel_package, variant }');
  const baseline = await fetchBaselineKernel(o.ctx, o.arch, base.kernel_package);
  const machine = await lockMachineFirmware({ ...o.ctx, repoRoot: o.repoRoot }, o.arch, await loadMachine(o.repoRoot, o.arch.qemu));
  const decision = await chooseAccelerator({
    machine,
    probe: { variant: base.variant, media: { kernel: o.kernel, initrd: o.initramfs } },
    runner: o.ctx.run,
    signal: o.ctx.signal,
    cacheFile: join(o.ctx.cacheDir, 'qemu-accel.json'),
  });
  o.onAccel?.(decision);
  const result = await runStockBench({
    ctx: o.ctx,
    arch: o.arch,
    machine,
    variant: base.variant,
    accel: decision.accel,
    accelNote: decision.note,
    clawosKernel: o.kernel,
    initramfs: o.initramfs,
    baseline,
    runs: o.runs,
    bar: o.bar,
    outDir: o.outDir,
  });
  return { result, baseline };
}
