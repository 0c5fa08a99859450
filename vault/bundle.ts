/**
 * A release bundle directory:
 *   artifacts/<path>        ISOs, kernels, initramfs images, reports (hard links into the store)
 *   events.jsonl            the run's event chain (JCS lines)
 *   attestation.dsse.json   in-toto Statement v1 / SLSA Provenance v1, DSSE-signed by a release key
 *   manifest.json           JCS: every other file (path, size, sha256; sorted), log root, head, attestation hash
 *   manifest.dsse.json      DSSE over the exact bytes of manifest.json, by a release key
 * The bundle is assembled in a sibling temp dir and renamed into place, so a
 * bundle directory is either complete or absent.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../lib/hash.js';
import { canonicalBytes } from './jcs.js';
import { buildStatement, statementBytes, type ProvenanceInput, type Statement, type SubjectKind } from './attestation.js';
import { envelopeBytes, INTOTO_PAYLOAD_TYPE, MANIFEST_PAYLOAD_TYPE, signEnvelope } from './dsse.js';
import { logRoot, splitLines, verifyChain } from './event-chain.js';
import type { Signer } from './keys.js';
import { caseFoldDuplicate, compareUtf8, unsafePathReason } from './paths.js';
import { restore } from './store.js';
import { VaultError } from './codes.js';

export { storeDir, storePath, storePut, storePutBytes, storeHas, restore } from './store.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_DSSE_FILE = 'manifest.dsse.json';
export const ATTESTATION_FILE = 'attestation.dsse.json';
export const EVENTS_FILE = 'events.jsonl';
export const ARTIFACTS_DIR = 'artifacts';

export interface BundleManifest {
  format: 'clawos-bundle-manifest';
  version: 1;
  run_id: string;
  release: string;
  builder_id: string;
  hash_alg: 'sha256';
  files: { path: string; size: number; sha256: string }[];
  events: { path: 'events.jsonl'; count: number; log_root_b64u: string; head_event_hash_b64u: string };
  attestation: { path: 'attestation.dsse.json'; sha256: string };
}

export interface BundleArtifact {
  /** Path under artifacts/, e.g. "x86_64/clawos-x86_64.iso". */
  path: string;
  /** The stored object (storePut first). */
  sha256: string;
  kind: SubjectKind;
}

export interface WriteBundleInput {
  buildDir: string;
  /** Must not exist yet; conventionally <build>/vault/bundles/<run_id>. */
  outDir: string;
  runId: string;
  release: string;
  builderId: string;
  artifacts: BundleArtifact[];
  /** The run's events.jsonl (verified before it is bundled). */
  eventsFile: string;
  provenance: Pick<ProvenanceInput, 'kernelSource' | 'debianPackages' | 'inputLock' | 'frozenSpecs' | 'startedOn' | 'finishedOn' | 'externalParameters' | 'builderVersion'>;
  releaseKey: Signer;
  /** Further files at the bundle's top level (the input lock), listed in the manifest like every file. */
  extraFiles?: { path: string; bytes: Buffer }[];
}

export interface WriteBundleResult {
  dir: string;
  manifest: BundleManifest;
  manifestSha256: string;
  attestationSha256: string;
  logRootB64u: string;
  headEventHashB64u: string;
}

/** Every regular file under dir, relative, '/'-separated (lstat: links are not followed). */
export async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(rel ? join(dir, rel) : dir)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(dir, r));
    if (st.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (st.isFile()) out.push(r);
    else throw new VaultError('PATH_UNSAFE', `${r}: not a regular file or directory`);
  }
  return out;
}

export async function writeBundle(input: WriteBundleInput): Promise<WriteBundleResult> {
  if (input.releaseKey.role !== 'release') throw new VaultError('UNKNOWN_KEY', `a bundle is signed by a release key, not a ${input.releaseKey.role} key`);
  try {
    await lstat(input.outDir);
    throw new VaultError('EXISTS', `${input.outDir} already exists; a bundle is written once`);
  } catch (e) {
    if (e instanceof VaultError) throw e;
  }
  const arts = input.artifacts.map((a) => ({ ...a, bundlePath: `${ARTIFACTS_DIR}/${a.path}` }));
  for (const a of arts) {
    const why = unsafePathReason(a.bundlePath);
    if (why) throw new VaultError('PATH_UNSAFE', `artifact ${a.path}: ${why}`);
  }
  const dup = caseFoldDuplicate(arts.map((a) => a.bundlePath));
  if (dup) throw new VaultError('PATH_UNSAFE', `artifacts ${dup[0]} and ${dup[1]} differ only in case`);

  const eventsRaw = await readFile(input.eventsFile);
  const split = splitLines(eventsRaw);
  if (split.torn) throw new VaultError('CHAIN_BROKEN', `${input.eventsFile}: torn last line`);
  const chain = verifyChain(split.lines, { runId: input.runId });
  if (!chain.ok) throw new VaultError(chain.code, `${input.eventsFile}: ${chain.detail}`);
  if (chain.count === 0) throw new VaultError('CHAIN_BROKEN', `${input.eventsFile}: no events`);
  const root = logRoot(split.lines);

  await mkdir(dirname(input.outDir), { recursive: true });
  const tmp = join(dirname(input.outDir), `.${basename(input.outDir)}.partial-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    const known = new Map<string, { size: number; sha256: string }>();
    for (const a of arts) {
      const dest = join(tmp, a.bundlePath);
      await restore(input.buildDir, a.sha256, dest);
      known.set(a.bundlePath, { size: (await stat(dest)).size, sha256: a.sha256 });
    }
    for (const x of input.extraFiles ?? []) {
      const why = unsafePathReason(x.path);
      if (why || x.path.startsWith(`${ARTIFACTS_DIR}/`)) throw new VaultError('PATH_UNSAFE', `bundle file ${x.path}: ${why ?? 'artifacts/ holds subjects only'}`);
      await writeFileAtomic(join(tmp, x.path), x.bytes);
    }
    await writeFileAtomic(join(tmp, EVENTS_FILE), eventsRaw);
    const eventsSha = sha256Hex(eventsRaw);

    const statement = buildStatement({
      ...input.provenance,
      subjects: arts.map((a) => ({ name: a.bundlePath, sha256: a.sha256, kind: a.kind })),
      builderId: input.builderId,
      runId: input.runId,
      release: input.release,
      eventLog: { name: EVENTS_FILE, sha256: eventsSha, count: chain.count, logRootB64u: root, headEventHashB64u: chain.head },
    });
    const att = envelopeBytes(signEnvelope(statementBytes(statement), INTOTO_PAYLOAD_TYPE, [input.releaseKey]));
    await writeFileAtomic(join(tmp, ATTESTATION_FILE), att);
    const attSha = sha256Hex(att);

    const files: BundleManifest['files'] = [];
    for (const p of (await listFiles(tmp)).sort(compareUtf8)) {
      if (p === MANIFEST_FILE || p === MANIFEST_DSSE_FILE) continue;
      const k = known.get(p);
      files.push({ path: p, size: k?.size ?? (await stat(join(tmp, p))).size, sha256: k?.sha256 ?? (await sha256File(join(tmp, p))) });
    }
    const manifest: BundleManifest = {
      format: 'clawos-bundle-manifest',
      version: 1,
      run_id: input.runId,
      release: input.release,
      builder_id: input.builderId,
      hash_alg: 'sha256',
      files,
      events: { path: EVENTS_FILE, count: chain.count, log_root_b64u: root, head_event_hash_b64u: chain.head },
      attestation: { path: ATTESTATION_FILE, sha256: attSha },
    };
    const mBytes = canonicalBytes(manifest);
    await writeFileAtomic(join(tmp, MANIFEST_FILE), mBytes);
    await writeFileAtomic(join(tmp, MANIFEST_DSSE_FILE), envelopeBytes(signEnvelope(mBytes, MANIFEST_PAYLOAD_TYPE, [input.releaseKey])));
    await rename(tmp, input.outDir);
    return { dir: input.outDir, manifest, manifestSha256: sha256Hex(mBytes), attestationSha256: attSha, logRootB64u: root, headEventHashB64u: chain.head };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The in-toto statement a bundle's attestation envelope carries (decoded, not verified: verify the bundle first). */
export async function readBundleStatement(dir: string): Promise<Statement> {
  const env = JSON.parse(await readFile(join(dir, ATTESTATION_FILE), 'utf8')) as { payload: string };
  return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as Statement;
}

/** Re-sign helpers for tools (and the tamper tests): the manifest of a bundle dir. */
export async function readBundleManifest(dir: string): Promise<BundleManifest> {
  return JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as BundleManifest;
}
