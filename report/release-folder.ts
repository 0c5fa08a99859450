/**
 * `clawos-build release`: a versioned folder <out>/clawos-<version>/ with
 *   clawos-<arch>.iso …            the ISOs, copied from the verified bundle
 *   clawos-<arch>.efi …            the signed UKIs (never an unsigned one)
 *   secureboot-cert.der            the certificate the UKIs are signed for, DER (mokutil --import)
 *   clawos-<version>.bundle.tar    the signed attestation bundle (exportBundle: deterministic tar)
 *   reports/gates/P1..P4/…         the gate reports, from the bundle
 *   reports/<security report>      G-04's security report, when it has produced one
 *   machines.json                  G-07's machine list (which machines booted which ISO, by whom, with what result)
 *   CHANGELOG.md                   every recorded run, from the verified event chains
 *   release.json                   what this release is: version, run, checks, files
 *   SHA256SUMS                     every other file, in the format `sha256sum -c` reads
 * It refuses (a value, not a throw) unless the build dir's copy of the newest
 * bundle's event chain verifies (a TAMPERED chain is refused: the build's own
 * record of the run is not what the bundle attests), gate P4's latest decision is
 * GO, the newest bundle is of that same run, and the bundle verifies with the
 * trust file given. The folder is assembled in a temp dir inside <out> and renamed into
 * place at the end, so it is either complete or absent.
 */
import { randomBytes, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../lib/atomic-write.js';
import { InfraError } from '../lib/errors.js';
import { readBundleManifest, readBundleStatement, type BundleManifest } from '../vault/bundle.js';
import { exportBundle } from '../vault/export.js';
import { loadTrust } from '../vault/keys.js';
import { verifyBundle } from '../vault/verify.js';
import { eventsPath, splitLines, verifyChain } from '../vault/event-chain.js';
import { eventsOf } from '../vault/event-payloads.js';
import { clawosVersion, sourceDateEpoch } from '../pipeline/run/session.js';
import { loadTestCerts } from '../pipeline/boot/secureboot-key.js';
import { changelogMarkdown, runSummaries } from './changelog.js';
import { loadRecordedResults } from './recorded-results.js';
import { releaseVersion } from './report-model.js';
import { bootRecordsOf, securityView } from './security-findings.js';
import { listBundles } from './vault-view.js';

/** G-07's output: the machines that booted this build's ISOs (pipeline/steps/hw-records.ts). */
const HW_MACHINES = 'qa/hw-machines.json';

export interface ReleaseOptions {
  repoRoot: string;
  buildDir: string;
  trust: string;
  /** Default: specs/release.yaml's version (the release the bundle attests). */
  version?: string;
  /** Default: <build>/release (the release agent's directory). */
  outDir?: string;
  now?: () => Date;
}

export type RefusalReason = 'chain-tampered' | 'no-gate' | 'gate-no-go' | 'no-bundle' | 'bundle-not-of-gate-run' | 'trust-unusable' | 'bundle-unverified' | 'version-mismatch' | 'bad-version' | 'exists';

export interface ReleaseFile {
  path: string;
  sha256: string;
  size: number;
}

export type ReleaseResult =
  | { ok: true; dir: string; version: string; run_id: string; files: ReleaseFile[]; notes: string[]; verify_detail: string }
  | { ok: false; reason: RefusalReason; detail: string; hint?: string };

const refuse = (reason: RefusalReason, detail: string, hint?: string): ReleaseResult => ({ ok: false, reason, detail, ...(hint ? { hint } : {}) });

/** Copy with fsync, returning the copy's sha256 and size (hashed from the bytes written). */
async function copyHashed(src: string, dst: string): Promise<{ sha256: string; size: number }> {
  await mkdir(dirname(dst), { recursive: true });
  const h = createHash('sha256');
  let size = 0;
  const out = createWriteStream(dst, { mode: 0o644 });
  for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const fh = await open(dst, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { sha256: h.digest('hex'), size };
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

async function listTree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await readdir(rel ? join(root, rel) : root)).sort()) {
    const r = rel ? `${rel}/${n}` : n;
    if ((await lstat(join(root, r))).isDirectory()) out.push(...(await listTree(root, r)));
    else out.push(r);
  }
  return out;
}

/** The verified statement's subjects of one kind (the bundle passed verifyBundle before this is read). */
async function subjectsOfKind(bundleDir: string, kind: string): Promise<string[]> {
  const st = await readBundleStatement(bundleDir);
  return st.subject.filter((s) => s.annotations?.kind === kind).map((s) => s.name);
}

/** The bundle's own (signed) event chain: the run's last P4 gate decision in it. */
async function bundleGateP4(bundleDir: string, runId: string): Promise<string | null> {
  const v = verifyChain(splitLines(await readFile(join(bundleDir, 'events.jsonl'))).lines, { runId });
  if (!v.ok) return null;
  const g = eventsOf(v.events, 'gate').filter((e) => e.payload.phase === 'P4').at(-1);
  return g ? String(g.payload.recommendation) : null;
}

const tamperHint = (buildDir: string, runId: string) =>
  `the bundle keeps its own signed copy, but the build's record of run ${runId} (${eventsPath(buildDir, runId)}) was changed after it was written: see \`clawos-build status\`, and release from a build whose evidence is intact`;

export async function makeRelease(o: ReleaseOptions): Promise<ReleaseResult> {
  const buildDir = resolve(o.buildDir);
  const rec = await loadRecordedResults(buildDir);
  const bundles = await listBundles(buildDir);
  const runId = bundles.at(-1);
  // First: a tampered chain's verified prefix could hide the very gate decisions checked below.
  const damaged = runId ? rec.tampered.find((t) => t.run_id === runId) : undefined;
  if (damaged) {
    return refuse(
      'chain-tampered',
      damaged.text,
      tamperHint(buildDir, runId!),
    );
  }
  const p4 = rec.gates.P4;
  if (!p4) return refuse('no-gate', `gate P4 has not been decided in ${buildDir}`, 'run `clawos-build all` with a release key, then release');
  if (p4.recommendation !== 'GO') {
    return refuse('gate-no-go', `gate P4 said NO-GO (${p4.decided_at}${p4.run_id ? `, run ${p4.run_id}` : ''})${p4.blockers.length ? `: ${p4.blockers.join('; ')}` : ''}`, 'fix the blockers and run `clawos-build all`');
  }
  if (!runId) return refuse('no-bundle', `no signed bundle in ${join(buildDir, 'vault', 'bundles')}`, 'a bundle is written by `clawos-build all` when gate P4 says GO and a release key exists (`clawos-build keys init --role release`)');
  if (p4.run_id !== runId) {
    return refuse(
      'bundle-not-of-gate-run',
      `the newest bundle is of run ${runId}, but gate P4 was last decided in ${p4.run_id ? `run ${p4.run_id}` : 'state.json (no vault run)'}, which has no bundle`,
      'run `clawos-build all` with a release key so that the current results are bundled',
    );
  }
  const bundleDir = join(buildDir, 'vault', 'bundles', runId);
  const trustPath = resolve(o.trust);
  let trust;
  try {
    trust = await loadTrust(trustPath);
  } catch (e) {
    return refuse('trust-unusable', `the trust file cannot be used: ${(e as Error).message}`);
  }
  const v = await verifyBundle(bundleDir, trust);
  if (!v.ok) return refuse('bundle-unverified', `the bundle of run ${runId} does not verify with ${trustPath}: ${v.code}: ${v.detail}`, `check it with \`clawos-build verify ${bundleDir} --trust ${o.trust}\``);
  // The build's chain was compared with the bundle's signed copy when it was read (vault-history readRunLog): a drift is in rec.tampered above.
  const signedP4 = await bundleGateP4(bundleDir, runId);
  if (signedP4 !== 'GO') return refuse('gate-no-go', `the bundle's own event chain records gate P4 as ${signedP4 ?? 'not decided'}`);
  const manifest: BundleManifest = await readBundleManifest(bundleDir);

  const version = o.version ?? (await releaseVersion(o.repoRoot)) ?? manifest.release;
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) return refuse('bad-version', `version ${JSON.stringify(version)} cannot name a release folder (letters, digits, . + _ - only)`);
  if (version !== manifest.release) {
    return refuse('version-mismatch', `version ${version} differs from the release the bundle attests (${manifest.release})`, `the signed bundle says ${manifest.release}: change specs/release.yaml and rebuild, or give --version ${manifest.release}`);
  }
  const outDir = resolve(o.outDir ?? join(buildDir, 'release'));
  const final = join(outDir, `clawos-${version}`);
  if (await lstat(final).then(() => true, () => false)) return refuse('exists', `${final} already exists; a release folder is written once`, 'remove it, or release another version');

  await mkdir(outDir, { recursive: true });
  const tmp = join(outDir, `.clawos-${version}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  const notes: string[] = [];
  try {
    const inManifest = new Map(manifest.files.map((f) => [f.path, f]));
    const take = async (bundlePath: string, dest: string): Promise<void> => {
      const want = inManifest.get(bundlePath)!;
      const got = await copyHashed(join(bundleDir, bundlePath), join(tmp, dest));
      // The bundle verified a moment ago; the copy must still be those bytes.
      if (got.sha256 !== want.sha256) throw new InfraError(`${bundlePath} changed while being copied (sha256 ${got.sha256}, manifest ${want.sha256})`);
    };
    const isos = (await subjectsOfKind(bundleDir, 'iso')).sort();
    const names = new Set<string>();
    for (const iso of isos) {
      const name = basename(iso);
      if (names.has(name)) throw new InfraError(`two ISOs in the bundle are named ${name}`);
      names.add(name);
      await take(iso, name);
    }
    // The signed UKIs, and the certificate they are signed for as DER (mokutil --import; docs/boot-lab.md).
    const ukis: string[] = [];
    for (const uki of (await subjectsOfKind(bundleDir, 'uki')).sort()) {
      const name = basename(uki);
      if (names.has(name) || ukis.includes(name)) throw new InfraError(`two files in the bundle are named ${name}`);
      ukis.push(name);
      await take(uki, name);
    }
    const ders = [...inManifest.keys()].filter((p) => p.endsWith('.secureboot.der')).sort();
    if (ders.length) {
      const shas = new Set(ders.map((p) => inManifest.get(p)!.sha256));
      if (shas.size > 1) throw new InfraError(`the bundle's UKIs are signed for ${shas.size} different Secure Boot certificates`);
      await take(ders[0]!, 'secureboot-cert.der');
      const certSha = createHash('sha256').update(await readFile(join(tmp, 'secureboot-cert.der'))).digest('hex');
      const test = (await loadTestCerts(o.repoRoot)).find((t) => t.sha256 === certSha);
      notes.push(
        test
          ? `the UKIs are signed with a public TEST key (${test.name}): secureboot-cert.der must not be enrolled on real hardware`
          : `secureboot-cert.der (sha256 ${certSha}) is the certificate the UKIs are signed for: enrol it with mokutil --import (docs/boot-lab.md)`,
      );
    } else if (ukis.length) notes.push('the bundle has UKIs but no Secure Boot certificate: they cannot be enrolled for');
    const gateReports = [];
    for (const phase of ['P1', 'P2', 'P3', 'P4'] as const) {
      const g = rec.gates[phase];
      for (const p of [g?.report_json, g?.report_md]) {
        if (!p) continue;
        if (inManifest.has(`artifacts/${p}`)) {
          await take(`artifacts/${p}`, `reports/${p}`);
          gateReports.push(`reports/${p}`);
        } else notes.push(`gate report ${p} is not in the bundle: not included`);
      }
    }
    const boots = [...rec.tasks.values()].sort((a, b) => a.id.localeCompare(b.id)).flatMap((t) => bootRecordsOf(t));
    const sec = await securityView(buildDir, rec.tasks, boots);
    let security: string | null = null;
    if (sec.report) {
      const dest = `reports/${basename(sec.report.path)}`;
      if (inManifest.has(`artifacts/${sec.report.path}`)) await take(`artifacts/${sec.report.path}`, dest);
      else {
        const got = await copyHashed(join(buildDir, sec.report.path), join(tmp, dest));
        if (got.sha256 !== sec.report.sha256) throw new InfraError(`${sec.report.path} changed while being copied`);
        notes.push(`the security report ${sec.report.path} is not in the signed bundle; included as ${sec.report.task} recorded it (sha256 ${sec.report.sha256})`);
      }
      security = dest;
    } else notes.push(`no security report: ${sec.missing}`);

    // G-07's machine list, from the signed bundle: the bundle's verification covers it (issue 15).
    let machines: string | null = null;
    if (inManifest.has(`artifacts/${HW_MACHINES}`)) {
      await take(`artifacts/${HW_MACHINES}`, 'machines.json');
      machines = 'machines.json';
    } else notes.push(`no machine list: ${HW_MACHINES} is not in the bundle (G-07 has recorded no hardware result)`);

    const tarName = `clawos-${version}.bundle.tar`;
    const tar = await exportBundle(bundleDir, join(tmp, tarName), { sourceDateEpoch: await sourceDateEpoch(o.repoRoot) });

    const summaries = runSummaries(rec.runs, new Set(bundles));
    const released = summaries.find((s) => s.run_id === runId);
    const preamble = [
      `Release ${version} is run ${runId}: its signed bundle (${tarName}, sha256 ${tar.sha256}) verified with ${trustPath} (${v.detail}).`,
      `Gates of that run: ${released?.gates.map((g) => `${g.phase} ${g.recommendation}`).join(', ') || 'none'}. Latest boot verdicts: ${boots.length ? boots.map((b) => `${b.arch} ${b.variant} ${b.verdict}`).join(', ') : 'none recorded'}.`,
      security ? `Security report: ${security} (from ${sec.report!.task}, ${sec.report!.task_status}).` : `Security report: not produced yet (${sec.missing}).`,
    ];
    await writeFileAtomic(join(tmp, 'CHANGELOG.md'), changelogMarkdown({ version, releaseRun: runId, buildDir, summaries, preamble }));

    const content = (await listTree(tmp)).filter((p) => p !== 'SHA256SUMS');
    const files: ReleaseFile[] = [];
    for (const p of content) {
      const f = await hashFile(join(tmp, p));
      files.push({ path: p, sha256: f.sha256, size: f.size });
    }
    await writeJsonAtomic(join(tmp, 'release.json'), {
      format: 'clawos-release@1',
      version,
      run_id: runId,
      created_at: (o.now ?? (() => new Date()))().toISOString(),
      clawos_build: await clawosVersion(o.repoRoot),
      verified: { trust: trustPath, code: v.code, detail: v.detail },
      bundle: { tar: tarName, sha256: tar.sha256, log_root_b64u: manifest.events.log_root_b64u, attestation_sha256: manifest.attestation.sha256 },
      gates: Object.fromEntries((['P1', 'P2', 'P3', 'P4'] as const).map((p) => [p, rec.gates[p]?.recommendation ?? null])),
      isos: [...names],
      ukis,
      gate_reports: gateReports,
      security_report: security,
      machines,
      notes,
      files,
    });
    const all = (await listTree(tmp)).filter((p) => p !== 'SHA256SUMS');
    const sums: ReleaseFile[] = [];
    for (const p of all) {
      const f = await hashFile(join(tmp, p));
      sums.push({ path: p, sha256: f.sha256, size: f.size });
    }
    // exportBundle wrote a SHA256SUMS for the tar alone; this one lists every file.
    await writeFileAtomic(join(tmp, 'SHA256SUMS'), sums.map((f) => `${f.sha256}  ${f.path}\n`).join(''));
    await rename(tmp, final);
    return { ok: true, dir: final, version, run_id: runId, files: sums, notes, verify_detail: v.detail };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
