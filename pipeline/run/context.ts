/**
 * What a run works with (RunContext), and the read-only part of it that computing
 * a fingerprint and deciding "up to date / restore / run" needs, so `explain` can
 * build exactly that part and nothing else.
 */
import { join, relative } from 'node:path';
import type { HashCache } from '../../lib/hash-cache.js';
import type { Redactor } from '../../lib/redact.js';
import type { RetryPolicy } from '../../lib/retry.js';
import type { SandboxMode } from '../../lib/sandbox.js';
import type { FreezeState, FrozenRead } from '../../vault/freeze-specs.js';
import type { RunVault } from '../../vault/run-vault.js';
import type { PassIndex } from '../../vault/vault-history.js';
import type { ArchSpec } from '../catalog/arch.js';
import type { LocalConfig } from '../catalog/config.js';
import type { TaskGraph } from '../catalog/graph.js';
import type { Catalog } from '../catalog/load-tasks.js';
import type { Step } from '../catalog/step.js';
import { expandArch, expandParams, type TaskInstance } from '../catalog/task-spec.js';
import type { AgentLogs } from './agent-log.js';
import { componentOutputs } from './component-build.js';
import type { EventSink } from './events.js';
import type { ToolVersions } from './fingerprint.js';
import type { ManifestQueue } from './manifest-queue.js';
import type { RemoteTaskCache } from './remote-cache.js';
import type { StateStore } from './state.js';
import type { ModuleSigningKey } from '../kernel/module-signing-key.js';
import type { IcecreamSetting, SecureBootKey } from '../catalog/step.js';
import type { CompilerCache } from '../ccache/compiler-cache.js';

/** What an instance's fingerprint is computed from. */
export interface FingerprintContext {
  repoRoot: string;
  buildDir: string;
  arches: Map<string, ArchSpec>;
  steps: Map<string, Step>;
  state: StateStore;
  hashCache: HashCache;
  tools: ToolVersions;
  config: LocalConfig;
  sourceDateEpoch: number;
  clawosVersion: string;
  /** How tasks run; part of every fingerprint (a PASS under --no-sandbox is not one for a sandboxed run). Absent: sandboxed, the default. */
  sandbox?: SandboxMode;
  /** The key dir's module-signing key (Step.moduleSigningKey steps); absent or null: none, kernels make their own. */
  moduleSigningKey?: ModuleSigningKey | null;
  /** The key dir's Secure Boot key (Step.secureBootKey steps); absent or null: none, G-05 cannot sign the UKI. */
  secureBootKey?: SecureBootKey | null;
  /**
   * --icecream: steps with Step.icecream compile through the local iceccd's cluster; absent or null: locally.
   * Not in a fingerprint: a whole kernel through the cluster is the local build's bytes (README *Measured*),
   * but it turns the compiler cache off for such a step (compilerCacheOf).
   */
  icecream?: IcecreamSetting | null;
  /**
   * The run's compiles go through ccache (steps with Step.compilerCache). In their fingerprints: ccache's
   * base_dir rewriting changes the debug info of some objects, so a kernel built through it is not a plain
   * build's bytes (docs/decisions.md). Absent or false: no cache.
   */
  compilerCacheOn?: boolean;
}

/** What deciding "up to date / restore / run" reads; it writes nothing. */
export interface FreshnessContext extends FingerprintContext {
  /** Earlier PASS results by fingerprint, from every run's chain (loaded on first use). */
  passes: PassIndex;
  /** --remote-cache: asked after the local store, before running (absent or null: none). */
  remote?: RemoteTaskCache | null;
}

export interface RunContext extends FreshnessContext {
  cacheDir: string;
  logs: AgentLogs;
  catalog: Catalog;
  graph: TaskGraph;
  jobs: number;
  emit: EventSink;
  signal: AbortSignal;
  /** Heartbeat interval for long tasks (ms); 0 disables. */
  heartbeatMs: number;
  /** This run's event chain and the content store. */
  vault: RunVault;
  /** Serializes this run's updates of the vault manifest. */
  manifest: ManifestQueue;
  /** The signed P1 freeze record, verified once per run. */
  freeze: FreezeState;
  /** Every file the freeze covers as this run read it (checked against the record at the start). */
  frozenRead: FrozenRead[];
  /** bwrap (probed once per run) or explicitly off (--no-sandbox); recorded in every task event. */
  sandbox: SandboxMode;
  /** Named secrets, replaced in every log line, event, record and report. */
  redact: Redactor;
  /** INFRA_ERROR retries; a task's `retries:` overrides the count. */
  retry: RetryPolicy;
  /** The shared compiler cache for steps with Step.compilerCache; null: off (or no such step in the run). Its being on is (compilerCacheOn). */
  compilerCache: CompilerCache | null;
  /** The commit the build ran from (and whether the tree had changes), null outside git: what `reproduce` checks out. */
  source: { commit: string; dirty: boolean } | null;
}

export function outDirOf(buildDir: string, inst: TaskInstance): string {
  const agent = inst.task.spec.agent;
  return inst.arch ? join(buildDir, agent, inst.arch) : join(buildDir, agent);
}

/** Build-relative output paths an instance must produce. */
export function declaredOutputs(ctx: Pick<FingerprintContext, 'buildDir' | 'config'>, inst: TaskInstance): string[] {
  const spec = inst.task.spec;
  const outs = spec.outputs.map((o) => expandArch(o, inst.arch));
  const component = spec.component ? ctx.config.components[spec.component] : undefined;
  if (component) outs.push(...componentOutputs(relative(ctx.buildDir, outDirOf(ctx.buildDir, inst)), component));
  return outs;
}

export function stepOf(ctx: Pick<FingerprintContext, 'steps'>, inst: TaskInstance): Step | null {
  return inst.task.spec.uses ? (ctx.steps.get(inst.task.spec.uses) ?? null) : null;
}

/**
 * Whether this instance's compiles go through ccache: its step uses the compiler cache, the run has it
 * on, and the step does not compile through icecream instead (kernel-build under --icecream).
 */
export function compilerCacheOf(ctx: Pick<FingerprintContext, 'steps' | 'icecream' | 'compilerCacheOn'>, inst: TaskInstance): boolean {
  return !!ctx.compilerCacheOn && !!stepOf(ctx, inst)?.compilerCache && !icecreamOf(ctx, inst);
}

/** The run's icecream setting when this instance's step compiles through the cluster; null: it compiles here. */
export function icecreamOf(ctx: Pick<FingerprintContext, 'steps' | 'icecream'>, inst: TaskInstance): IcecreamSetting | null {
  return ctx.icecream && stepOf(ctx, inst)?.icecream ? ctx.icecream : null;
}

export function archOf(ctx: Pick<FingerprintContext, 'arches'>, inst: TaskInstance): ArchSpec | null {
  return inst.arch ? (ctx.arches.get(inst.arch) ?? null) : null;
}

export function paramsOf(inst: TaskInstance): Record<string, unknown> {
  return (expandParams(inst.task.spec.with ?? {}, inst.arch) as Record<string, unknown>) ?? {};
}

export function toolPackagesOf(ctx: Pick<FingerprintContext, 'steps' | 'arches'>, inst: TaskInstance): string[] {
  const step = stepOf(ctx, inst);
  // A copy: callers sort it, and a step may hand back the arch data's own list (ebpf-build's tool_packages).
  return step ? [...step.toolPackages(archOf(ctx, inst), paramsOf(inst))] : [];
}
