/**
 * The contract between the scheduler and a built-in step (`uses:` in a task spec).
 * Steps never print: they write to ctx.log, report progress through ctx.progress,
 * run children only through ctx.run, and return an Outcome.
 */
import type { LoadedLock } from './input-lock.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import type { Outcome } from './outcome.js';
import type { ArchSpec } from './arch.js';

/** The key dir's Secure Boot signing key (pipeline/boot/secureboot-key.ts finds and checks it). */
export interface SecureBootKey {
  keyPath: string;
  certPath: string;
  /** sha256 of the certificate (DER): what firmware db / MOK enrols. */
  certSha256: string;
  subject: string;
  /** Set when the certificate is a known public test certificate (specs/secureboot.yaml): its name. */
  testKey: string | null;
}

/** The run's shared compiler cache, for a step with Step.compilerCache (pipeline/ccache/compiler-cache.ts). */
export interface CompilerCacheUse {
  /** Absolute path of ccache. */
  ccache: string;
  /** CCACHE_* for this task: the shared dir, base_dir, its own stats log, the remote storage. */
  env: Record<string, string>;
}

/** The run's icecream cluster (--icecream, or `icecream:` in the config file), for a step with Step.icecream. */
export interface IcecreamSetting {
  /** make -j while the compiles go to the cluster (its slots, not this machine's cores). */
  jobs: number;
}

export interface StepContext {
  /** Catalog task id, e.g. "A-01". */
  taskId: string;
  /** Task instance id: "A-01@x86_64", or "C-01" for arch-independent tasks. */
  instanceId: string;
  /** The architecture this instance builds for, or null for arch-independent tasks. */
  arch: ArchSpec | null;
  /** The task's `with:` parameters, with {arch}-style placeholders already expanded. */
  params: Record<string, unknown>;
  /** Absolute path of the repository (kernel-config/, buildroot-external/, qemu/ …). */
  repoRoot: string;
  /** Absolute build dir (default ./build). */
  buildDir: string;
  /** Absolute output dir this instance may write: <buildDir>/<agent dir>[/<arch>]. */
  outDir: string;
  /** Shared download/extract cache: <buildDir>/cache. Content-keyed, safe to share. */
  cacheDir: string;
  /**
   * The managed module-signing key (PEM, 0600) for a step with Step.moduleSigningKey,
   * or undefined when the key dir has none: the kernel then makes its own per build.
   */
  moduleSigningKey?: string;
  /** The key dir's Secure Boot key for a step with Step.secureBootKey (pipeline/boot/secureboot-key.ts); undefined: none. */
  secureBootKey?: SecureBootKey;
  /** The compiler cache for a step with Step.compilerCache; undefined: compile without one (off, or ccache missing). */
  compilerCache?: CompilerCacheUse;
  /** Set when the run compiles through an icecream cluster and the step declares Step.icecream. */
  icecream?: IcecreamSetting;
  /** Tests: the input lock to fetch by (default inputs.lock.yaml of repoRoot) and the download cache. */
  lock?: () => Promise<LoadedLock>;
  downloadCache?: string;
  /** Resolve a path from the task spec: relative paths are relative to the build dir. */
  buildPath(rel: string): string;
  /** SOURCE_DATE_EPOCH for the run (seconds). */
  sourceDateEpoch: number;
  /** Parallel jobs this instance may use (make -j). */
  jobs: number;
  /** Append a line to the task log. */
  log(line: string): void;
  /** Tell the user what the step is doing now (one short line). */
  progress(message: string): void;
  /** Run a child process: logged, killed with its group on timeout or abort. */
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** Aborted when the task times out or the run is interrupted. */
  signal: AbortSignal;
  /**
   * The vault's hardware records (issue 15), each with whether its signature is a
   * trusted tester's per `trustFile`: the run reads the vault for the step, which may not.
   */
  hardwareRecords?(trustFile: string): Promise<{ id: string; counted: boolean; why: string | null; record: HardwareRecordFields | null }[]>;
}

/** The fields of a signed hardware record (vault/hw-record.ts) a step reads. */
export interface HardwareRecordFields {
  iso: { sha256: string; arch: string };
  machine: { vendor: string; product: string; firmware: string; boot_path: string; secure_boot: string };
  verdict: string;
  message: string;
  failed_checks: string[];
  missing_checks: string[];
  tester: { name: string; keyid: string };
  recorded_at: string;
}

/**
 * One boot a step's result reports. The run records each as a boot-verdict event
 * citing the two files (matched by file name among the task's outputs or evidence).
 */
export interface BootReport {
  arch: string;
  variant: string;
  verdict: string;
  reason: string | null;
  stage: string | null;
  stage_ms: Record<string, number | null> | null;
  message: string;
  accel: string | null;
  duration_ms: number | null;
  /** File name of the serial log. */
  serial_log: string;
  /** File name of the boot record. */
  record: string;
}

/**
 * The JSON Schema of a step's `with:` block. additionalProperties is false so a
 * misspelt parameter is an error `clawos-build validate` reports with file:line:col.
 */
export interface ParamsSchema {
  type: 'object';
  properties: Record<string, object>;
  required?: string[];
  additionalProperties: false;
}

export interface Step {
  /** The `uses:` name. */
  name: string;
  /** The step consumes packages pinned in inputs.lock.yaml: a run fetches the lock's packages before any such step runs. */
  lockedInputs?: boolean;
  /** The step signs kernel modules: it gets the key dir's module-signing key, whose certificate is part of its fingerprint. */
  moduleSigningKey?: boolean;
  /** The step signs for Secure Boot: it gets the key dir's Secure Boot key, whose certificate is part of its fingerprint. */
  secureBootKey?: boolean;
  /**
   * The step's compiles may go through the run's compiler cache (ccache): it gets
   * ctx.compilerCache, and the run reports the task's hit rate. With the cache on,
   * its fingerprint says so (compiled_by: ccache): ccache's base_dir can change the
   * debug info (docs/decisions.md).
   */
  compilerCache?: boolean;
  /** What `with:` may hold, checked when the catalog loads (pipeline/catalog/step-params.ts). Every built-in step has one. */
  params?: ParamsSchema;
  /**
   * Bump when the step's behaviour changes in a way that changes its outputs, so
   * fingerprints change and old results are not reused.
   */
  version: number;
  /**
   * Its compiles can fan out to an icecream cluster: under --icecream it gets ctx.icecream and the host's
   * network (icecc's client connects to the remote daemons itself). Not part of the fingerprint: the output
   * is the same bytes either way.
   */
  icecream?: boolean;
  /** Debian packages whose versions are part of the fingerprint. */
  toolPackages(arch: ArchSpec | null, params: Record<string, unknown>): string[];
  /** Build-dir-relative files/dirs the step reads that no dependency declares (G-07: the vault's hardware records); part of the fingerprint. */
  buildInputs?(params: Record<string, unknown>): string[];
  /** Repo-relative files/dirs this step reads beyond the task's declared inputs. */
  implicitInputs?(arch: ArchSpec | null, params: Record<string, unknown>): string[];
  /**
   * What the step's commands need beyond the task's own output dir: the shared
   * content-keyed cache writable, device nodes (e.g. /dev/kvm). Network is the
   * task's declaration (`network: true`), not the step's.
   */
  sandbox?: { cache?: boolean; devices?: string[] };
  run(ctx: StepContext): Promise<Outcome>;
  /**
   * The boots a result of this step reports, read from its Outcome's `data`; asked
   * of fresh and of kept (up-to-date, restored) results alike.
   */
  bootReports?(data: unknown): BootReport[];
}
