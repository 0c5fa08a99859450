/**
 * Everything a command needs, opened once: catalog, arches, state, caches, logs,
 * and for a run its vault (run id, event chain, store) with the verified P1 freeze.
 */
import { applyBackend } from '../catalog/backends.js';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InfraError, UserError } from '../../lib/errors.js';
import { HashCache } from '../../lib/hash-cache.js';
import { AgentLogs } from './agent-log.js';
import { loadArches, type ArchSpec } from '../catalog/arch.js';
import { loadLocalConfig } from '../catalog/config.js';
import type { EventSink } from './events.js';
import { ToolVersions } from './fingerprint.js';
import { buildGraph } from '../catalog/graph.js';
import { loadTasks, type Catalog } from '../catalog/load-tasks.js';
import { toolPackagesOf, type RunContext } from './context.js';
import { ManifestQueue } from './manifest-queue.js';
import { StateStore } from './state.js';
import { builtinSteps } from '../steps/index.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { loadRelease } from '../../lib/data.js';
import type { Step } from '../catalog/step.js';
import { NO_SANDBOX, probeSandbox, type SandboxMode } from '../../lib/sandbox.js';
import { Redactor } from '../../lib/redact.js';
import { DEFAULT_RETRY, type RetryPolicy } from '../../lib/retry.js';
import type { Phase } from '../catalog/task-spec.js';
import { RunVault } from '../../vault/run-vault.js';
import { PassIndex } from '../../vault/vault-history.js';
import type { RemoteTimeouts } from '../../vault/remote-cache.js';
import { RemoteTaskCache } from './remote-cache.js';
import { checkFrozenFiles } from '../../vault/freeze-specs.js';
import { defaultKeyDir } from '../../vault/key-dir.js';
import { findModuleSigningKey } from '../kernel/module-signing-key.js';
import { icecreamSetting, onPath } from '../kernel/icecc.js';
import { findSecureBootKey, loadTestCerts } from '../boot/secureboot-key.js';
import { run as runProcess } from '../../lib/proc.js';
import { chooseCompilerCache, openCompilerCache, type CompilerCache, type CompilerCacheFlags } from '../ccache/compiler-cache.js';
import type { RunStartPayload } from '../../vault/event-payloads.js';

export { repoRootDir } from '../../lib/repo-root.js';

export async function clawosVersion(repoRoot: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function loadValidCatalog(repoRoot: string, tasksDir?: string, steps: Map<string, Step> = builtinSteps()): Promise<Catalog> {
  const { catalog, diagnostics } = await loadTasks({ repoRoot, tasksDir, stepNames: new Set(steps.keys()), steps });
  if (diagnostics.length) {
    throw new UserError(
      `${diagnostics.length} error(s) in the task specs:\n${diagnostics.map(formatDiagnostic).join('\n')}`,
      'run `clawos-build validate` to see them all',
      diagnostics[0],
    );
  }
  return catalog;
}

export async function selectArches(repoRoot: string, wanted: string[] | null): Promise<Map<string, ArchSpec>> {
  const all = await loadArches(repoRoot);
  if (!wanted) return all;
  const out = new Map<string, ArchSpec>();
  for (const a of wanted) {
    const spec = all.get(a);
    if (!spec) throw new UserError(`unknown architecture "${a}"`, `known: ${[...all.keys()].join(', ')}`);
    out.set(a, spec);
  }
  return out;
}

export interface SessionOptions {
  repoRoot: string;
  buildDir: string;
  logDir?: string;
  arches: string[] | null;
  jobs: number;
  configFile?: string;
  tasksDir?: string;
  emit: EventSink;
  signal: AbortSignal;
  heartbeatMs: number;
  sourceDateEpoch?: number;
  /** Replace the built-in steps (tests). */
  steps?: Map<string, Step>;
  /** NO_SANDBOX for --no-sandbox; absent: bwrap, probed (an InfraError if it cannot run). */
  sandbox?: SandboxMode;
  /** --no-sandbox: run unconfined, recorded in run-start and every task event. */
  noSandbox?: boolean;
  /** Names of environment variables whose values are secrets (redacted everywhere). */
  secretEnv?: string[];
  /** INFRA_ERROR retries (tests pass a zero-delay policy). */
  retry?: RetryPolicy;
  /** The phases this run was asked for (recorded in the run-start event). */
  phases?: Phase[];
  /** --rootfs-backend NAME and the parameters it adds to the tasks that offer it (pipeline/catalog/backends.ts). */
  backend?: { name: string; params: Record<string, unknown> };
  /** The key dir (default $CLAWOS_KEY_DIR or ~/.config/clawos-build/keys): its module-signing key goes to the kernel build. */
  keyDir?: string;
  /** --remote-cache URL / --remote-cache-readonly; they win over the config file's remote_cache. */
  remoteCache?: { url?: string; readonly?: boolean; timeouts?: RemoteTimeouts };
  /** --compiler-cache / --no-compiler-cache / --compiler-cache-remote URL; they win over the config file's compiler_cache. */
  compilerCache?: CompilerCacheFlags;
  /** --icecream / --icecream-jobs N; they win over the config file's icecream. */
  icecream?: { on?: boolean; jobs?: number };
}

/** The commit the repository is at and whether its tree has changes git sees; null outside git. */
export interface SourceRevision {
  commit: string;
  dirty: boolean;
}

export async function sourceRevision(repoRoot: string): Promise<SourceRevision | null> {
  // One git call: porcelain v2 with --branch names the commit (`# branch.oid`) above the changed files.
  // Tracked files only: an untracked file (a CI harness's own log, say) is not part of the commit's identity.
  // A new input left uncommitted is not lost either: `reproduce` from the commit then finds outputs that differ.
  const st = await runProcess(['git', '-C', repoRoot, 'status', '--porcelain=v2', '--branch', '--untracked-files=no'], { captureStdout: true });
  if (!st.ok) return null;
  const lines = st.stdout.split('\n').filter((l) => l !== '');
  const oid = lines.find((l) => l.startsWith('# branch.oid '))?.slice('# branch.oid '.length);
  if (!oid || !/^[0-9a-f]{40}$/.test(oid)) return null; // outside git, or no commit yet ("(initial)")
  return { commit: oid, dirty: lines.some((l) => !l.startsWith('#')) };
}

/** SOURCE_DATE_EPOCH: from the environment, else specs/release.yaml. */
export async function sourceDateEpoch(repoRoot: string): Promise<number> {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') {
    if (!/^\d+$/.test(env)) throw new UserError(`SOURCE_DATE_EPOCH must be a number of seconds, not ${JSON.stringify(env)}`);
    return Number(env);
  }
  return (await loadRelease(repoRoot)).source_date_epoch;
}

export async function openRun(o: SessionOptions): Promise<RunContext> {
  const steps = o.steps ?? builtinSteps();
  const loaded = await loadValidCatalog(o.repoRoot, o.tasksDir, steps);
  const catalog = o.backend ? applyBackend(loaded, o.backend.name, o.backend.params) : loaded;
  const arches = await selectArches(o.repoRoot, o.arches);
  // Every file the freeze covers must match its signed record, whatever the tasks declare:
  // a drifted spec stops the run before anything is opened or written.
  const frozen = await checkFrozenFiles(o.repoRoot);
  if (!frozen.ok) throw new UserError(frozen.message, frozen.hint);
  const buildDir = resolve(o.buildDir);
  const graph = buildGraph(catalog.tasks, [...arches.keys()]);
  const state = await StateStore.open(buildDir);
  const hashCache = await HashCache.open(join(buildDir, 'cache', 'hash-cache.json'));
  const config = await loadLocalConfig(o.repoRoot, o.configFile);
  // Fail closed before anything runs: no silent unsandboxed fallback.
  const sandbox = o.sandbox ?? (o.noSandbox ? NO_SANDBOX : await probeSandbox());
  const redact = Redactor.fromEnv([...new Set([...config.secrets.env, ...(o.secretEnv ?? [])])]);
  const emit: EventSink = (e) => o.emit(redact.value(e));
  const remoteUrl = o.remoteCache?.url ?? config.remote_cache?.url;
  if (o.remoteCache?.readonly && !remoteUrl) throw new UserError('--remote-cache-readonly needs a cache: --remote-cache URL, or remote_cache.url in the config file');
  // Opened before anything is logged: its URL's credentials join the redactor first.
  const remote = remoteUrl
    ? await RemoteTaskCache.open(
        {
          url: remoteUrl,
          readonly: !!(o.remoteCache?.readonly ?? config.remote_cache?.readonly),
          ...(config.remote_cache?.header_env ? { headerEnv: config.remote_cache.header_env } : {}),
          ...(o.remoteCache?.timeouts ? { timeouts: o.remoteCache.timeouts } : {}),
        },
        { keyDir: o.keyDir ?? defaultKeyDir(), redact, emit, signal: o.signal },
      )
    : null;
  const icecream = icecreamSetting(o.icecream ?? {}, config.icecream, o.jobs);
  if (icecream && !onPath('icecc', process.env.PATH)) {
    throw new InfraError('icecream: icecc is not on PATH', 'install Debian\'s icecc (apt-get install icecc) and start iceccd with your scheduler, or build without --icecream', { transient: false });
  }
  // Only a run with a step that compiles through it looks for ccache and its remote.
  const compiles = graph.order.some((i) => steps.get(i.task.spec.uses ?? '')?.compilerCache);
  if (o.compilerCache?.remote) redactUrlPassword(redact, o.compilerCache.remote);
  if (config.compiler_cache?.remote) redactUrlPassword(redact, config.compiler_cache.remote);
  const compilerCache = compiles ? await openCompilerCache(chooseCompilerCache(config.compiler_cache, o.compilerCache ?? {}), { run: runProcess }) : { cache: null, notes: [] };
  for (const message of compilerCache.notes) emit({ type: 'info', message });
  const vault = await RunVault.open(buildDir);
  vault.redact = (v) => redact.value(v);
  const rc: RunContext = {
    repoRoot: o.repoRoot,
    buildDir,
    cacheDir: join(buildDir, 'cache'),
    logs: new AgentLogs(o.logDir ? resolve(o.logDir) : join(buildDir, 'logs')),
    catalog,
    graph,
    arches,
    steps,
    state,
    hashCache,
    tools: new ToolVersions(join(buildDir, 'cache', 'tool-versions.json')),
    config,
    jobs: o.jobs,
    sourceDateEpoch: o.sourceDateEpoch ?? (await sourceDateEpoch(o.repoRoot)),
    emit,
    signal: o.signal,
    clawosVersion: await clawosVersion(o.repoRoot),
    heartbeatMs: o.heartbeatMs,
    vault,
    manifest: new ManifestQueue(buildDir),
    sandbox,
    redact,
    retry: o.retry ?? DEFAULT_RETRY,
    freeze: frozen.freeze,
    frozenRead: frozen.read,
    passes: new PassIndex(buildDir),
    remote,
    compilerCache: compilerCache.cache,
    compilerCacheOn: compilerCache.cache !== null,
    icecream,
    moduleSigningKey: (await findModuleSigningKey(o.keyDir ?? defaultKeyDir())) ?? null,
    // A wrong key (no certificate, a certificate of another key, readable by others) stops the run here: exit 4 with the fix.
    secureBootKey: (await findSecureBootKey(o.keyDir ?? defaultKeyDir(), await loadTestCerts(o.repoRoot))) ?? null,
    source: await sourceRevision(o.repoRoot),
  };
  const packages = [...new Set(graph.order.flatMap((i) => toolPackagesOf(rc, i)))].sort();
  await rc.tools.load(packages);
  await rc.vault.append('run-start', {
    clawos_version: rc.clawosVersion,
    node: process.version,
    arches: [...arches.keys()],
    phases: o.phases ?? null,
    jobs: o.jobs,
    sandbox: sandbox.kind === 'bwrap' ? { kind: 'bwrap', version: sandbox.version } : { kind: 'off', reason: sandbox.reason },
    secrets: redact.secretNames,
    ...(remote ? { remote_cache: { cache: remote.shown, readonly: remote.readonly, pull: remote.canPull, push: remote.canPush } } : {}),
    ...(compiles ? { compiler_cache: compilerCacheRecord(compilerCache.cache) } : {}),
    ...(icecream ? { icecream } : {}),
    source_date_epoch: rc.sourceDateEpoch,
    source: rc.source,
    module_signing: rc.moduleSigningKey ? { cert_sha256: rc.moduleSigningKey.certSha256, subject: rc.moduleSigningKey.subject } : null,
    secure_boot: rc.secureBootKey ? { cert_sha256: rc.secureBootKey.certSha256, subject: rc.secureBootKey.subject, test_key: rc.secureBootKey.testKey } : null,
    tools: Object.fromEntries(packages.map((p) => [p, rc.tools.get(p)])),
    freeze: rc.freeze.ok ? { frozen_at: rc.freeze.payload.frozen_at, specs: rc.freeze.payload.specs, read: rc.frozenRead.map(({ path, sha256 }) => ({ path, sha256 })) } : { problem: rc.freeze.detail },
  });
  return rc;
}

/** A redis URL's password joins the redactor before anything is logged. */
function redactUrlPassword(redact: Redactor, url: string): void {
  const m = /^redis(?:\+unix)?:\/\/(?:([^:@/]*):)?([^@/]+)@/.exec(url);
  if (m) redact.add('compiler-cache-password', decodeURIComponent(m[2]!));
}

/** What run-start records of the compiler cache (no credentials). */
function compilerCacheRecord(c: CompilerCache | null): RunStartPayload['compiler_cache'] {
  return c ? { ccache: c.version, dir: c.dir, remote: c.remote ? { url: c.remote.shown, readonly: c.remote.readonly } : null } : null;
}
