/** An instance's fingerprint and its parts, computed now: the run and `explain` both call this. */
import { expandArch, type TaskInstance } from '../catalog/task-spec.js';
import { archOf, compilerCacheOf, paramsOf, stepOf, toolPackagesOf, type FingerprintContext } from './context.js';
import { fingerprintOf, hashRepoPath, type FingerprintParts } from './fingerprint.js';
import { lockKey } from '../catalog/input-lock.js';
import { lockOf } from '../inputs/debs.js';

export interface InstanceFingerprint {
  fingerprint: string;
  parts: FingerprintParts;
}

export async function computeFingerprint(ctx: FingerprintContext, inst: TaskInstance): Promise<InstanceFingerprint> {
  const spec = inst.task.spec;
  const arch = archOf(ctx, inst);
  const step = stepOf(ctx, inst);
  const params = paramsOf(inst);
  const inputs: Record<string, string> = {};
  const inputPaths = [...spec.inputs.map((i) => expandArch(i, inst.arch)), ...(step?.implicitInputs?.(arch, params) ?? [])];
  if (arch) inputPaths.push(`specs/arch/${arch.name}.yaml`);
  for (const p of [...new Set(inputPaths)].sort()) inputs[p] = await hashRepoPath(ctx.repoRoot, p, ctx.hashCache);
  for (const p of step?.buildInputs?.(params) ?? []) inputs[`build:${p}`] = await hashRepoPath(ctx.buildDir, p, ctx.hashCache);
  const frozen: Record<string, string> = {};
  for (const p of spec.frozen_spec_deps) frozen[p] = await hashRepoPath(ctx.repoRoot, p, ctx.hashCache);
  const deps: FingerprintParts['deps'] = {};
  for (const d of inst.deps) {
    const r = ctx.state.instance(d);
    deps[d] = { status: r?.status ?? 'missing', outputs: Object.fromEntries(Object.entries(r?.outputs ?? {}).map(([k, v]) => [k, v.sha256])) };
  }
  const tools: Record<string, string> = {};
  for (const p of toolPackagesOf(ctx, inst).sort()) tools[p] = ctx.tools.get(p);
  const parts: FingerprintParts = {
    spec,
    arch,
    step: step ? { name: step.name, version: step.version } : null,
    inputs,
    frozen_specs: frozen,
    deps,
    tools,
    component: spec.component ? (ctx.config.components[spec.component] ?? 'not-configured') : null,
    source_date_epoch: ctx.sourceDateEpoch,
    sandbox: ctx.sandbox?.kind ?? 'bwrap',
    // Absent for other steps, so their fingerprints do not move when the lock does.
    ...(step?.lockedInputs ? { locked: await lockedFor(ctx.repoRoot, arch?.debian_arch ?? null) } : {}),
    ...(step?.moduleSigningKey ? { module_signing_cert: ctx.moduleSigningKey?.certSha256 ?? null } : {}),
    ...(step?.secureBootKey ? { secureboot_cert: ctx.secureBootKey?.certSha256 ?? null } : {}),
    // Absent for a plain build, so turning the cache on moves no fingerprint of a build without it. --icecream is
    // not here: through the cluster a kernel is the plain build's bytes (docs/decisions.md), one result.
    ...(compilerCacheOf(ctx, inst) ? { compiled_by: 'ccache' as const } : {}),
  };
  // The hash also covers clawos-build's version; the recorded parts do not (explain names it apart).
  return { fingerprint: fingerprintOf({ ...parts, clawos: ctx.clawosVersion }), parts };
}

/** The lock entries an instance of this arch can fetch (arch-independent ones and its own arch's), as fingerprint input. */
async function lockedFor(repoRoot: string, debianArch: string | null): Promise<Record<string, string>> {
  const { lock } = await lockOf({ repoRoot });
  const out: Record<string, string> = {};
  for (const d of lock.debs) if (d.arch === 'all' || debianArch === null || d.arch === debianArch) out[lockKey(d.name, d.arch)] = `${d.version} ${d.sha256}`;
  return out;
}
