/**
 * The release bundle of a run, made from what the run's event chain records (not
 * from state.json): subjects are the PASS outputs and gate reports that match
 * specs/vault/bundle.yaml, resolved dependencies are the kernel source pin, the
 * Debian packages the steps recorded (Outcome.data.debs) and the frozen P1 specs.
 * Written to <build>/vault/bundles/<run_id>/, then <build>/vault/bundles/latest
 * (a small file naming the run: verify never follows symlinks) points at it.
 */
import { sha256Hex } from '../lib/hash.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { yamlValue } from '../lib/yaml-source.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import type { SubjectKind } from './attestation.js';
import { writeBundle, type BundleArtifact, type WriteBundleResult } from './bundle.js';
import { VaultError } from './codes.js';
import type { VaultEvent } from './event-chain.js';
import type { Signer } from './keys.js';
import { schemaError } from './schemas.js';
import { storeHas } from './store.js';
import { RUN_ID_PATTERN } from './run-vault.js';
import { eventsOf } from './event-payloads.js';

export const BUNDLE_CONFIG = 'specs/vault/bundle.yaml';

export interface BundleConfig {
  builder_id: string;
  kernel_source: string;
  subjects: { kind: SubjectKind; glob: string }[];
}

export async function loadBundleConfig(repoRoot: string): Promise<BundleConfig> {
  const doc = yamlValue(await readFile(join(repoRoot, BUNDLE_CONFIG), 'utf8'), BUNDLE_CONFIG);
  const err = schemaError('bundle-config', doc);
  if (err) throw new VaultError('INVALID_SCHEMA', `${BUNDLE_CONFIG}: ${err}`);
  return doc as BundleConfig;
}

export function bundlesDir(buildDir: string): string {
  return join(buildDir, 'vault', 'bundles');
}

/** The run id named by <build>/vault/bundles/latest, if any. */
export async function latestBundle(buildDir: string): Promise<string | undefined> {
  try {
    const id = (await readFile(join(bundlesDir(buildDir), 'latest'), 'utf8')).trim();
    return RUN_ID_PATTERN.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** `*` within one segment, everything else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${body}$`);
}

export interface KernelSourcePin {
  name: string;
  sha256: string;
  uri?: string;
}

export interface ReleaseBundleInput {
  buildDir: string;
  runId: string;
  eventsFile: string;
  /** The run's events so far (run-start … run-end). */
  events: readonly VaultEvent[];
  release: string;
  config: BundleConfig;
  kernelSource: KernelSourcePin;
  /** Subjects made when the bundle is made (the SBOMs), already in the content store. */
  extraSubjects?: BundleArtifact[];
  /** inputs.lock.yaml as the build read it: carried in the bundle and named as a resolved dependency. */
  inputLock?: { path: string; bytes: Buffer };
  frozenSpecs: { path: string; sha256: string; version: string; spec_id?: string; frozen_sha256?: string }[];
  /** Debian architecture of a build arch (x86_64 -> amd64), for packages whose record has none. */
  debianArch: (arch: string | null) => string | undefined;
  builderVersion: Record<string, string>;
  externalParameters: Record<string, unknown>;
  releaseKey: Signer;
}

export interface ReleaseBundle extends WriteBundleResult {
  subjects: BundleArtifact[];
  debianPackages: number;
}

function isDebList(v: unknown): v is { package: string; version: string; sha256: string; arch?: string }[] {
  return Array.isArray(v) && v.every((d) => d && typeof d === 'object' && typeof d.package === 'string' && typeof d.version === 'string' && typeof d.sha256 === 'string');
}

export async function writeReleaseBundle(input: ReleaseBundleInput): Promise<ReleaseBundle> {
  const taskEnds = eventsOf(input.events, 'task-end').map((e) => e.payload);
  const gates = eventsOf(input.events, 'gate').map((e) => e.payload);
  const files = new Map<string, string>();
  for (const t of taskEnds) if (t.status === 'PASS') for (const o of t.outputs) files.set(o.path, o.sha256);
  for (const g of gates) for (const r of g.reports) files.set(r.path, r.sha256);

  const rules = input.config.subjects.map((s) => ({ kind: s.kind, re: globToRegExp(s.glob) }));
  const subjects: BundleArtifact[] = [];
  for (const [path, sha256] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const rule = rules.find((r) => r.re.test(path));
    if (!rule) continue;
    if (!(await storeHas(input.buildDir, sha256))) throw new VaultError('FILE_MISSING', `${path} (sha256 ${sha256}) is recorded but not in the content store`);
    subjects.push({ path, sha256, kind: rule.kind });
  }
  for (const s of input.extraSubjects ?? []) subjects.push(s);
  subjects.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const kind of ['iso', 'kernel', 'initramfs'] as const) {
    if (!subjects.some((s) => s.kind === kind)) throw new VaultError('FILE_MISSING', `the run recorded no ${kind} matching ${BUNDLE_CONFIG}`);
  }

  const debs = new Map<string, { name: string; version: string; arch: string; sha256: string }>();
  for (const t of taskEnds) {
    const d = (t.data as { debs?: unknown } | undefined)?.debs;
    if (t.status !== 'PASS' || !isDebList(d)) continue;
    for (const p of d) {
      const arch = p.arch ?? input.debianArch(t.arch);
      if (!arch) throw new VaultError('INVALID_SCHEMA', `${t.task}: Debian package ${p.package} has no architecture`);
      debs.set(`${p.package} ${p.version} ${arch}`, { name: p.package, version: p.version, arch, sha256: p.sha256 });
    }
  }
  const kernelVersion = taskEnds
    .map((t) => t.data as { sha256?: unknown; kernelRelease?: unknown } | undefined)
    .find((d) => d?.sha256 === input.kernelSource.sha256 && typeof d.kernelRelease === 'string')?.kernelRelease as string | undefined;

  const start = input.events.find((e) => e.type === 'run-start');
  const end = [...input.events].reverse().find((e) => e.type === 'run-end');
  if (!start || !end) throw new VaultError('CHAIN_BROKEN', `run ${input.runId}: a bundle needs the run-start and run-end events`);

  const outDir = join(bundlesDir(input.buildDir), input.runId);
  const res = await writeBundle({
    buildDir: input.buildDir,
    outDir,
    runId: input.runId,
    release: input.release,
    builderId: input.config.builder_id,
    artifacts: subjects,
    eventsFile: input.eventsFile,
    provenance: {
      kernelSource: { ...input.kernelSource, ...(kernelVersion ? { version: kernelVersion } : {}) },
      debianPackages: [...debs.values()],
      ...(input.inputLock ? { inputLock: { name: input.inputLock.path, sha256: sha256Hex(input.inputLock.bytes) } } : {}),
      frozenSpecs: input.frozenSpecs,
      startedOn: start.time,
      finishedOn: end.time,
      externalParameters: input.externalParameters,
      builderVersion: input.builderVersion,
    },
    releaseKey: input.releaseKey,
    ...(input.inputLock ? { extraFiles: [{ path: input.inputLock.path, bytes: input.inputLock.bytes }] } : {}),
  });
  await writeFileAtomic(join(bundlesDir(input.buildDir), 'latest'), `${input.runId}\n`);
  return { ...res, subjects, debianPackages: debs.size };
}
