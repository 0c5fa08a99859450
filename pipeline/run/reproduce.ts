/**
 * What `clawos-build reproduce` needs below the command: the bundle's statement
 * read back, the kernel of an earlier build seeded into a fresh build dir (the
 * cheaper check: rebuild everything else), and every attested subject compared
 * by sha256 with the rebuild.
 */
import { link, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { ATTESTATION_FILE, ARTIFACTS_DIR, readBundleStatement } from '../../vault/bundle.js';
import type { SubjectKind } from '../../vault/attestation.js';
import { storePut } from '../../vault/store.js';
import type { Catalog } from '../catalog/load-tasks.js';
import { buildGraph } from '../catalog/graph.js';
import { isPassed } from '../catalog/outcome.js';
import { outDirOf } from './context.js';
import { StateStore, type InstanceRecord } from './state.js';

/** Subjects that are build outputs: a rebuild from the same commit and lock must give the same bytes. */
export const BUILD_OUTPUT_KINDS: readonly SubjectKind[] = ['kernel', 'initramfs', 'ebpf', 'iso', 'uki', 'sbom'];

export interface BundleSubject {
  /** Build-relative path (also its path under the bundle's artifacts/). */
  path: string;
  sha256: string;
  kind: SubjectKind;
}

/** What the bundle says it was built from (the statement's externalParameters). */
export interface BundleBuild {
  runId: string;
  arches: string[];
  sourceDateEpoch: number;
  source: { commit: string; dirty: boolean } | null;
  /** sha256 of the module-signing certificate its kernels carry; null: keys made per build; undefined: not recorded. */
  moduleSigningCert: string | null | undefined;
  /** sha256 of the certificate its UKIs are signed for; null: no Secure Boot key; undefined: not recorded (older bundles). */
  secureBootCert: string | null | undefined;
  subjects: BundleSubject[];
}

/** The (already verified) bundle's statement, read for what reproduce needs. */
export async function readBundleBuild(bundleDir: string): Promise<BundleBuild> {
  const st = await readBundleStatement(bundleDir);
  const ext = st.predicate.buildDefinition.externalParameters as {
    arches?: string[];
    source_date_epoch?: number;
    source?: { commit: string; dirty: boolean } | null;
    module_signing_cert?: string | null;
    secure_boot?: { cert_sha256: string } | null;
  };
  if (!Array.isArray(ext.arches) || typeof ext.source_date_epoch !== 'number') {
    throw new UserError(`${join(bundleDir, ATTESTATION_FILE)}: the statement names no arches or source_date_epoch: not a clawos-build release bundle`);
  }
  return {
    runId: st.predicate.runDetails.metadata.invocationId,
    arches: ext.arches,
    sourceDateEpoch: ext.source_date_epoch,
    source: ext.source ?? null,
    moduleSigningCert: ext.module_signing_cert,
    secureBootCert: ext.secure_boot === undefined ? undefined : (ext.secure_boot?.cert_sha256 ?? null),
    subjects: st.subject.map((s) => ({ path: s.name.replace(new RegExp(`^${ARTIFACTS_DIR}/`), ''), sha256: s.digest['sha256']!, kind: (s.annotations?.['kind'] ?? 'report') as SubjectKind })),
  };
}

/**
 * Seeds <buildDir> with the passed results of the instances of `steps` (e.g.
 * kernel-build) from <fromDir>, and of everything they depend on (a kernel is
 * reused with the inputs it was built from): their state records, their outputs
 * hard-linked, and those outputs in the new vault store. The run then finds them
 * up to date exactly when their fingerprints (inputs, tools, lock, key) match
 * here too, and rebuilds them otherwise. Returns the seeded instances with the records taken over.
 */
export async function seedInstances(fromDir: string, buildDir: string, catalog: Catalog, steps: readonly string[], arches: readonly string[]): Promise<SeededInstance[]> {
  const graph = buildGraph(catalog.tasks, [...arches]);
  const wanted = new Set<string>();
  const visit = (id: string) => {
    if (wanted.has(id)) return;
    wanted.add(id);
    for (const d of graph.byId.get(id)?.deps ?? []) visit(d);
  };
  for (const inst of graph.order) if (steps.includes(inst.task.spec.uses ?? '')) visit(inst.id);
  const from = await StateStore.open(fromDir);
  const to = await StateStore.open(buildDir);
  const seeded: SeededInstance[] = [];
  for (const inst of graph.order.filter((i) => wanted.has(i.id))) {
    const rec = from.instance(inst.id);
    if (!rec || !isPassed(rec.status)) throw new UserError(`${fromDir}: ${inst.id} has no passed result to reuse`, `build it there first (clawos-build all --build-dir ${fromDir})`);
    for (const [rel, o] of Object.entries(rec.outputs)) {
      const src = join(fromDir, rel);
      const now = await sha256File(src).catch(() => null);
      if (now !== o.sha256) throw new UserError(`${src}: ${now ? 'changed' : 'missing'} since ${inst.id} recorded it`, `run clawos-build all --build-dir ${fromDir} first`);
    }
    // The whole output dir, as the earlier build left it: dependants also read what a step writes
    // beside its declared outputs (kernel-build's build-info.json names the source tree).
    await linkTree(outDirOf(fromDir, inst), outDirOf(buildDir, inst), inst.arch ? [] : arches);
    for (const rel of Object.keys(rec.outputs)) await storePut(buildDir, join(buildDir, rel));
    await to.putInstance(rec);
    seeded.push({ id: rec.id, record: rec });
  }
  await to.save();
  return seeded;
}

export interface SeededInstance {
  id: string;
  /** The record taken over: the rebuild kept it when it found the instance up to date. */
  record: InstanceRecord;
}

/**
 * The outputs the rebuild really took over: those of seeded instances whose record it
 * kept. One it ran again (its fingerprint differed here) was rebuilt: its outputs count.
 */
export function reusedOutputs(seeded: readonly SeededInstance[], after: (id: string) => InstanceRecord | undefined): Set<string> {
  const out = new Set<string>();
  for (const s of seeded) {
    if (JSON.stringify(after(s.id)) !== JSON.stringify(s.record)) continue;
    for (const p of Object.keys(s.record.outputs)) out.add(p);
  }
  return out;
}

/** Hard-links every file under `from` into `to` (created), skipping top-level folders named in `skip` (other instances' arch dirs). */
async function linkTree(from: string, to: string, skip: readonly string[]): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const e of await readdir(from, { withFileTypes: true })) {
    if (skip.includes(e.name)) continue;
    const a = join(from, e.name);
    const b = join(to, e.name);
    if (e.isDirectory()) await linkTree(a, b, []);
    else if (e.isSymbolicLink()) await symlink(await readlink(a), b);
    else if (e.isFile()) await link(a, b);
  }
}

export interface SubjectComparison extends BundleSubject {
  /** sha256 of the rebuilt file, null when the rebuild has none. */
  rebuilt: string | null;
  same: boolean;
  /** Taken over from the earlier build (--reuse-kernel), not rebuilt: proves nothing. */
  reused: boolean;
  /** A build output (must match) or run evidence (boot logs, timings: expected to differ). */
  role: 'output' | 'evidence';
}

export async function compareSubjects(subjects: readonly BundleSubject[], rebuiltDir: string, reusedPaths: ReadonlySet<string>): Promise<SubjectComparison[]> {
  const out: SubjectComparison[] = [];
  for (const s of subjects) {
    const rebuilt = await sha256File(join(rebuiltDir, s.path)).catch(() => null);
    out.push({ ...s, rebuilt, same: rebuilt === s.sha256, reused: reusedPaths.has(s.path), role: BUILD_OUTPUT_KINDS.includes(s.kind) ? 'output' : 'evidence' });
  }
  return out;
}

/** The bundle's own copy of a subject. */
export function bundleArtifact(bundleDir: string, subjectPath: string): string {
  return join(bundleDir, ARTIFACTS_DIR, subjectPath);
}
