/**
 * `uses: stock-bench` (G-08): boot ClawOS's kernel and Debian's stock kernel
 * with the same initramfs on the same QEMU machine and compare time to init,
 * memory used after boot and kernel image size (pipeline/bench/stock-bench.ts).
 * params:
 *   kernel      ClawOS kernel image, build-relative
 *   initramfs   the initramfs both kernels boot, build-relative
 *   runs        boots per kernel (default 3); the median counts
 *   bar         minimum score (baseline / ClawOS) per metric (default 0.8, the catalog's bar)
 * The baseline package and the machine variant come from the arch spec's `baseline:`.
 * Outputs in ctx.outDir/bench: bench.json, bench.md and the serial logs.
 */
import { access, constants, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { InfraError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { findRepoRoot, loadMachineSync } from '../../qemu/machine.js';
import { benchAgainstStock, formatBenchTable } from '../bench/stock-bench.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError } from '../catalog/step-params.js';

function num(v: unknown, dflt: number, what: string, min: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new StepParamError(`stock-bench: parameter '${what}' must be a number >= ${min}`);
  return v;
}

async function runStep(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'stock-bench: this step runs per arch; the task has none');
  if (!arch.baseline) return fail('spec-invalid', `stock-bench: specs/arch/${arch.name}.yaml has no baseline: { kernel_package, variant } section`);
  const kernelRel = ctx.params['kernel'];
  const initrdRel = ctx.params['initramfs'];
  if (typeof kernelRel !== 'string' || typeof initrdRel !== 'string') return fail('spec-invalid', "stock-bench: parameters 'kernel' and 'initramfs' (build-relative paths) are required");
  const runs = Math.floor(num(ctx.params['runs'], 3, 'runs', 1));
  const bar = num(ctx.params['bar'], 0.8, 'bar', 0);
  const kernel = ctx.buildPath(kernelRel);
  const initramfs = ctx.buildPath(initrdRel);
  for (const f of [kernel, initramfs]) {
    try {
      await access(f, constants.R_OK);
    } catch {
      return fail('output-missing', `stock-bench: ${relative(ctx.buildDir, f)} not found`);
    }
  }
  const outDir = join(ctx.outDir, 'bench');
  await rm(outDir, { recursive: true, force: true });
  const { result, baseline } = await benchAgainstStock({ ctx, repoRoot: ctx.repoRoot, arch, kernel, initramfs, runs, bar, outDir });
  const table = formatBenchTable(result);
  ctx.log(table);
  await writeJsonAtomic(join(outDir, 'bench.json'), result);
  await writeFileAtomic(join(outDir, 'bench.md'), `# G-08 benchmark (${arch.name})\n\n\`\`\`\n${table}\n\`\`\`\n`);
  const evidence = [];
  for (const f of ['bench.json', 'bench.md']) evidence.push({ label: `benchmark ${f}`, path: relative(ctx.buildDir, join(outDir, f)), sha256: await sha256File(join(outDir, f)) });
  // `debs` puts the stock kernel package among the bundle's resolved dependencies.
  const data = { ...result, debs: [{ package: baseline.deb.package, version: baseline.deb.version, sha256: baseline.deb.sha256 }] };
  const scores = result.metrics.map((m) => `${m.name} ${m.score === null ? 'n/a' : `${m.score.toFixed(2)}x`}`).join(', ');
  const missing = result.metrics.filter((m) => m.score === null).map((m) => m.name);
  if (missing.length) {
    return fail('bench-no-figure', `stock-bench: no figure for ${missing.join(', ')} (a boot never reached CLAWOS-INIT with its mem_used_kb; see ${relative(ctx.buildDir, outDir)})`, { evidence, data });
  }
  const below = result.metrics.filter((m) => !m.pass).map((m) => `${m.name} ${m.score!.toFixed(2)}x`);
  if (below.length) return fail('bench-below-bar', `stock-bench: below the bar of ${bar} vs Debian ${result.baseline_kernel.version}: ${below.join(', ')}`, { evidence, data });
  return pass(`stock-bench: vs Debian ${result.baseline_kernel.version} (${result.accel}, ${runs} boots each): ${scores}`, { evidence, data });
}

export const stockBenchStep: Step = {
  name: 'stock-bench',
  lockedInputs: true,
  version: 1,
  params: paramsSchema({ kernel: P.path, initramfs: P.path, runs: P.number, bar: P.number }, ['kernel', 'initramfs']),
  // The stock kernel .deb and the probe's scratch are in the shared cache; KVM when the host has it.
  sandbox: { cache: true, devices: ['/dev/kvm'] },
  // The emulator and firmware versions (the Debian kernel's version is in the result data).
  toolPackages(arch) {
    const root = findRepoRoot();
    if (!arch || !root) return [];
    try {
      return [...loadMachineSync(root, arch.qemu).packages].sort();
    } catch {
      return [];
    }
  },
  implicitInputs: (arch) => (arch ? [arch.qemu] : []),
  async run(ctx) {
    try {
      return await runStep(ctx);
    } catch (err) {
      if (err instanceof StepParamError) return fail('spec-invalid', err.message);
      if (err instanceof InfraError) return infra(err.message);
      throw err;
    }
  },
};
