/**
 * Phases in order, each ending in its gate. A phase refuses to start until the
 * previous gate said GO on the same inputs (the fingerprints of its task
 * instances now equal the ones the gate judged). Each gate decision (new or
 * kept) is a `gate` event citing its reports and evidence in the vault's store;
 * finishRun closes the run's chain and, after a GO of gate P4 in a run of P1 to
 * P4, writes the signed release bundle.
 */
import { sha256Hex } from '../../lib/hash.js';
import { InfraError, UserError } from '../../lib/errors.js';
import { VaultError } from '../../vault/codes.js';
import { readManifest, recordInManifest } from '../../vault/manifest.js';
import { evaluateGate, writeGateReport, type GateReport, type GateSpec } from './gates.js';
import { phaseInstances } from '../catalog/graph.js';
import { runInstances } from './scheduler.js';
import type { RunContext } from './context.js';
import { computeFingerprint } from './instance-fingerprint.js';
import { isPassed } from '../catalog/outcome.js';
import { describeChange } from './explain-change.js';
import type { GateRecord, InstanceRecord } from './state.js';
import { PHASES, type Phase } from '../catalog/task-spec.js';
import { sha256File } from '../../lib/hash.js';
import { basename, join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { loadRelease } from '../../lib/data.js';
import { stableJson } from './fingerprint.js';
import { loadPinnedKernelSource } from '../kernel/source.js';
import { LOCK_FILE, loadLock } from '../catalog/input-lock.js';
import { writeSbomSubjects } from './sbom-subjects.js';
import { findSigner } from '../../vault/key-dir.js';
import { currentP1Specs, readSpec } from '../../vault/freeze-specs.js';
import { bundlesDir, loadBundleConfig, writeReleaseBundle, type ReleaseBundle } from '../../vault/release-bundle.js';
import type { VaultEvent } from '../../vault/event-chain.js';
import { isEvent, type StoredFile } from '../../vault/event-payloads.js';
import { readAllRuns } from '../../vault/vault-history.js';
import { lavaEvidenceFiles } from '../../vault/lava-evidence.js';
import { restore, storeHas } from '../../vault/store.js';

export interface PhaseResult {
  phase: Phase;
  records: InstanceRecord[];
  gate: GateReport;
}

export async function requireGate(rc: RunContext, gatePhase: Phase, forPhase: Phase): Promise<void> {
  const g = rc.state.gate(gatePhase);
  const cmd = `clawos-build ${gatePhase.toLowerCase()}`;
  if (!g) throw new UserError(`phase ${forPhase} cannot start: gate ${gatePhase} has not been run in ${rc.buildDir}`, `run \`${cmd}\` first (or \`clawos-build all\`)`);
  if (g.recommendation !== 'GO') {
    throw new UserError(
      `phase ${forPhase} cannot start: gate ${gatePhase} said NO-GO: ${g.blockers[0] ?? 'see its report'}${g.blockers.length > 1 ? ` (+${g.blockers.length - 1} more)` : ''}`,
      `see ${join(rc.buildDir, g.report_md)}, fix the blockers and run \`${cmd}\``,
    );
  }
  // Every instance this run needs from that phase must have been judged by the gate, with
  // the fingerprint it has now. (A subset is fine: a gate for both arches covers an x86_64-only run.)
  const insts = phaseInstances(rc.graph, gatePhase);
  const unjudged = insts.filter((i) => !(i.id in (g.fingerprints ?? {}))).map((i) => i.id);
  if (unjudged.length) {
    throw new UserError(
      `phase ${forPhase} cannot start: gate ${gatePhase} did not judge ${unjudged.join(', ')} (it was decided for ${g.arches.join(', ')})`,
      `run \`${cmd} --arch ${[...rc.graph.arches].join(',')}\` first`,
    );
  }
  const changed: string[] = [];
  for (const inst of insts) {
    const { fingerprint, parts } = await computeFingerprint(rc, inst);
    if (g.fingerprints[inst.id] !== fingerprint) {
      const why = describeChange(rc.state.instance(inst.id)?.fingerprint_parts, parts);
      changed.push(`${inst.id} (${why.slice(0, 3).join('; ')})`);
    }
  }
  if (changed.length) {
    throw new UserError(
      `phase ${forPhase} cannot start: gate ${gatePhase} passed on other inputs; changed since: ${changed.join(', ')}`,
      `run \`${cmd}\` again`,
    );
  }
}

export async function runPhase(rc: RunContext, phase: Phase, gateSpecs: Record<Phase, GateSpec>): Promise<PhaseResult> {
  const idx = PHASES.indexOf(phase);
  if (idx > 0) await requireGate(rc, PHASES[idx - 1]!, phase);
  const instances = phaseInstances(rc.graph, phase);
  const spec = gateSpecs[phase];
  rc.emit({ type: 'phase-start', phase, title: spec.title, instances: instances.map((i) => ({ id: i.id, title: i.task.spec.title })) });
  const records = await runInstances(rc, instances);
  if (records.some((r) => !isPassed(r.status))) await rollbackPhase(rc, phase, instances.map((i) => i.id));
  const fingerprints = Object.fromEntries(instances.map((i) => [i.id, rc.state.instance(i.id)?.fingerprint ?? '']));
  // Nothing changed since the recorded decision: re-check its evidence, keep its reports.
  // A failed instance has no fingerprint (''), so two different failures would look
  // alike: a phase with a failure is always decided again.
  const prev = rc.state.gate(phase);
  const allFingerprinted = Object.values(fingerprints).every((f) => f !== '');
  // The rule is an input of the decision too: a gate whose require_pass or require_arches changed is judged again.
  const ruleSha = sha256Hex(stableJson(spec));
  if (prev && allFingerprinted && prev.rule_sha256 === ruleSha && stableJson(prev.fingerprints) === stableJson(fingerprints) && stableJson(prev.arches) === stableJson([...rc.graph.arches])) {
    const kept = await keptGate(rc, prev);
    if (kept) {
      await recordGate(rc, kept, prev, true);
      rc.emit({ type: 'gate', phase, recommendation: kept.recommendation, blockers: kept.blockers, coverage: kept.coverage.line, report: prev.report_md });
      return { phase, records, gate: kept };
    }
  }
  const gate = await evaluateGate({ phase, spec, instances, state: rc.state, arches: [...rc.graph.arches], buildDir: rc.buildDir, hashCache: rc.hashCache });
  const rec = { ...(await writeGateReport(rc.buildDir, gate, fingerprints)), rule_sha256: ruleSha };
  const entries = [];
  for (const rel of [rec.report_json, rec.report_md]) {
    const abs = join(rc.buildDir, rel);
    entries.push({ path: rel, sha256: await sha256File(abs), size: (await stat(abs)).size });
  }
  await recordInManifest(rc.buildDir, `gate:${phase}`, entries);
  await rc.state.putGate(rec);
  await recordGate(rc, gate, rec, false);
  await rc.hashCache.save();
  rc.emit({ type: 'gate', phase, recommendation: gate.recommendation, blockers: gate.blockers, coverage: gate.coverage.line, report: rec.report_md });
  return { phase, records, gate };
}

/** A phase's outputs as its last GO gate saw them: the latest PASS task-end of each instance before that gate event. */
export interface GateCheckpoint {
  run_id: string;
  seq: number;
  decided_at: string;
  outputs: { task: string; path: string; sha256: string; store: string }[];
}

export async function lastGateCheckpoint(buildDir: string, phase: Phase, ids: readonly string[]): Promise<GateCheckpoint | null> {
  const want = new Set(ids);
  const latest = new Map<string, StoredFile[]>();
  let cp: GateCheckpoint | null = null;
  for (const run of await readAllRuns(buildDir)) {
    for (const e of run.events) {
      if (isEvent(e, 'task-end')) {
        const p = e.payload;
        if (p.task && want.has(p.task) && p.status === 'PASS' && p.outputs) latest.set(p.task, p.outputs);
      }
      if (isEvent(e, 'gate') && e.payload.phase === phase && e.payload.recommendation === 'GO') {
        cp = {
          run_id: run.runId,
          seq: e.seq,
          decided_at: e.payload.decided_at ?? e.time,
          outputs: [...latest].flatMap(([task, files]) => files.map((f) => ({ task, path: f.path, sha256: f.sha256, store: f.store }))),
        };
      }
    }
  }
  return cp;
}

/**
 * RULE-005: after a failure, the phase's outputs go back to its last passed gate
 * checkpoint, from the content store (each failed task's rollback_cmd has run
 * already). Files the checkpoint did not have are left to rollback_cmd. A later
 * run after a fix re-runs the failed tasks; the passing ones whose files were put
 * back are restored from the store again, not rebuilt.
 */
async function rollbackPhase(rc: RunContext, phase: Phase, ids: string[]): Promise<void> {
  const cp = await lastGateCheckpoint(rc.buildDir, phase, ids);
  const restored: GateCheckpoint['outputs'] = [];
  const missing: string[] = [];
  for (const o of cp?.outputs ?? []) {
    const abs = join(rc.buildDir, o.path);
    const now = await rc.hashCache.file(abs).catch(() => null);
    if (now?.sha256 === o.sha256) continue;
    if (!(await storeHas(rc.buildDir, o.sha256))) {
      missing.push(o.path);
      continue;
    }
    await restore(rc.buildDir, o.sha256, abs);
    restored.push(o);
  }
  const checkpoint = cp ? `gate ${phase} GO of ${cp.decided_at} (run ${cp.run_id}, event ${cp.seq})` : null;
  await rc.vault.append('rollback', {
    phase,
    checkpoint: cp ? { run_id: cp.run_id, seq: cp.seq, decided_at: cp.decided_at } : null,
    restored,
    not_restored: missing,
  });
  rc.emit({ type: 'phase-rollback', phase, checkpoint, restored: restored.map((o) => o.path).sort(), missing: missing.sort() });
}

/** The decision as a vault event: its reports go into the store, its evidence cites store objects. */
async function recordGate(rc: RunContext, gate: GateReport, rec: GateRecord, kept: boolean): Promise<void> {
  const reports = [];
  for (const rel of [rec.report_json, rec.report_md]) {
    const { added: _added, ...file } = await rc.vault.store(rel);
    reports.push(file);
  }
  await rc.vault.append('gate', {
    phase: gate.phase,
    recommendation: gate.recommendation,
    blockers: gate.blockers,
    coverage: gate.coverage.line,
    inputs_fingerprint: gate.inputs_fingerprint,
    decided_at: gate.decided_at,
    kept,
    reports,
    evidence: gate.checks.flatMap((c) => c.evidence.map((e) => ({ task: c.id, path: e.path, sha256: e.sha256, store: e.store ?? null }))),
  });
}

/**
 * The recorded gate report, if its files still hash to what the vault recorded and
 * every piece of evidence it cites is unchanged; else null (decide again).
 */
async function keptGate(rc: RunContext, prev: GateRecord): Promise<GateReport | null> {
  const manifest = await readManifest(rc.buildDir);
  for (const rel of [prev.report_json, prev.report_md]) {
    const entry = manifest.entries.find((e) => e.path === rel);
    const now = await rc.hashCache.file(join(rc.buildDir, rel)).catch(() => null);
    if (!entry || !now || now.sha256 !== entry.sha256) return null;
  }
  const report = JSON.parse(await readFile(join(rc.buildDir, prev.report_json), 'utf8')) as GateReport;
  for (const c of report.checks) {
    for (const ev of c.evidence) {
      const now = await rc.hashCache.file(join(rc.buildDir, ev.path)).catch(() => null);
      if (!now || now.sha256 !== ev.sha256) return null;
    }
  }
  return report;
}

/** Run phases in order, stopping at the first NO-GO. */
export async function runPhases(rc: RunContext, phases: Phase[], gateSpecs: Record<Phase, GateSpec>): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [];
  for (const p of phases) {
    const r = await runPhase(rc, p, gateSpecs);
    out.push(r);
    if (r.gate.recommendation !== 'GO') break;
  }
  return out;
}

export interface RunFinish {
  runId: string;
  eventsFile: string;
  /** The signed bundle, when one was written. */
  bundle?: ReleaseBundle;
  releaseKeyId?: string;
  /** Why there is no bundle (no release key, P4 not GO …), when there is none. */
  bundleNote?: string;
}

/** A covered file whose bytes differ from what the run read and checked at its start, as a bundle note. */
async function frozenDrift(rc: RunContext): Promise<string | undefined> {
  for (const s of rc.frozenRead) {
    const now = await readSpec(rc.repoRoot, s.path);
    if (now?.sha256 !== s.sha256) return `no bundle: frozen spec ${s.path} changed during the run: read sha256 ${s.sha256} at the start, now ${now ? `sha256 ${now.sha256}` : 'missing'}`;
  }
  // A covered file added during the run was not checked either.
  const added = (await currentP1Specs(rc.repoRoot)).find((n) => !rc.frozenRead.some((s) => s.path === n.path));
  return added ? `no bundle: ${added.path} appeared during the run and is not in the freeze record` : undefined;
}

async function releaseVersion(repoRoot: string): Promise<string> {
  return (await loadRelease(repoRoot)).version;
}

/**
 * End the run's chain with run-end, and after gate P4 said GO in a run of P1 to
 * P4, write the bundle signed with the release key of `keyDir`. Without a release
 * key the run still ends (nothing is claimed): the run-end event and the result
 * say the bundle was not signed and how to make the key.
 */
export async function finishRun(
  rc: RunContext,
  results: PhaseResult[],
  o: { keyDir: string; trustFile?: string; error?: string },
): Promise<RunFinish> {
  const records = results.flatMap((r) => r.records);
  const count = (pred: (s: string) => boolean) => records.filter((r) => pred(r.status)).length;
  const p4 = results.find((r) => r.phase === 'P4');
  const allPhases = PHASES.every((p) => results.some((r) => r.phase === p));
  let note: string | undefined;
  let signer;
  if (o.error) note = `no bundle: the run stopped: ${o.error}`;
  else if (rc.signal.aborted) note = 'no bundle: the run was interrupted';
  else if (!p4) note = 'no bundle: gate P4 was not run (a release bundle needs `clawos-build all`)';
  else if (p4.gate.recommendation !== 'GO') note = 'no bundle: gate P4 said NO-GO';
  else if (!allPhases) note = 'no bundle: a release bundle covers P1 to P4 in one run; run `clawos-build all`';
  else if (!rc.freeze.ok) note = `no bundle: the P1 freeze record does not verify: ${rc.freeze.detail}`;
  // A covered file changed after the start: the run's tasks may have read other bytes than it checked.
  else note = await frozenDrift(rc);
  if (!note) {
    signer = await findSigner(o.keyDir, 'release', o.trustFile);
    if (!signer) note = `no release key in ${o.keyDir}: bundle not signed; run \`clawos-build keys init --role release\``;
  }
  if (rc.remote) rc.emit({ type: 'info', message: rc.remote.summary() });
  const status = o.error ? 'error' : rc.signal.aborted ? 'interrupted' : records.some((r) => !isPassed(r.status)) || results.some((r) => r.gate.recommendation !== 'GO') ? 'failed' : 'passed';
  await rc.vault.append('run-end', {
    status,
    ...(o.error ? { error: o.error } : {}),
    gates: results.map((r) => ({ phase: r.phase, recommendation: r.gate.recommendation })),
    tasks: { total: records.length, passed: count((s) => s === 'PASS'), built: count((s) => s === 'BUILT'), not_configured: count((s) => s === 'NOT_CONFIGURED'), other: count((s) => !isPassed(s)) },
    bundle: signer ? { status: 'signing', dir: `vault/bundles/${rc.vault.runId}`, release_key: signer.keyid } : { status: 'none', reason: note },
    ...(rc.remote ? { remote_cache: { cache: rc.remote.shown, readonly: rc.remote.readonly, stats: { ...rc.remote.stats }, ...(rc.remote.downReason ? { down: rc.remote.downReason } : {}) } } : {}),
  });
  const done: RunFinish = { runId: rc.vault.runId, eventsFile: rc.vault.eventsFile, ...(note ? { bundleNote: note } : {}) };
  if (!signer || !rc.freeze.ok) {
    await rc.vault.close();
    return done;
  }
  // The attestation cites the bytes this run read (checked against the record at its start).
  const frozenSpecs = rc.frozenRead.map((s) => ({ path: s.path, sha256: s.sha256, version: s.version, frozen_sha256: s.frozen_sha256, ...(s.spec_id ? { spec_id: s.spec_id } : {}) }));
  const events = rc.vault.log.eventBytes().map((b) => JSON.parse(b.toString('utf8')) as VaultEvent);
  await rc.vault.close();
  const config = await loadBundleConfig(rc.repoRoot);
  const src = await loadPinnedKernelSource(rc.repoRoot, process.env, config.kernel_source);
  const lockBytes = await readFile(join(rc.repoRoot, LOCK_FILE));
  const release = await releaseVersion(rc.repoRoot);
  // The images' bills of materials, attested with them.
  const sboms = await writeSbomSubjects(rc, config, (await loadLock(rc.repoRoot)).lock, release, src.deb?.package);
  let bundle: ReleaseBundle;
  try {
    bundle = await writeReleaseBundle({
      buildDir: rc.buildDir,
      runId: rc.vault.runId,
      eventsFile: rc.vault.eventsFile,
      events,
      release,
      config,
      kernelSource: {
        name: basename(src.tarball ?? src.url ?? 'kernel-source'),
        sha256: src.sha256,
        uri: src.url ?? `file://${src.tarball}`,
      },
      inputLock: { path: LOCK_FILE, bytes: lockBytes },
      extraSubjects: [...sboms, ...(await lavaSubjects(rc.buildDir, events))],
      frozenSpecs,
      debianArch: (a) => (a ? rc.arches.get(a)?.debian_arch : undefined),
      builderVersion: { 'clawos-build': rc.clawosVersion, node: process.version },
      externalParameters: {
        arches: [...rc.graph.arches],
        phases: results.map((r) => r.phase),
        source_date_epoch: rc.sourceDateEpoch,
        // What `clawos-build reproduce` rebuilds from: the commit, and the module-signing certificate the kernels carry.
        source: rc.source,
        module_signing_cert: rc.moduleSigningKey?.certSha256 ?? null,
        // The bundle says which outputs were not built by this run but pulled from a remote cache, and who vouched for them.
        ...(rc.remote ? { remote_cache: { cache: rc.remote.shown, restored: rc.remote.restoredAll() } } : {}),
        // The certificate the UKIs are signed for; test_key names a public TEST certificate (specs/secureboot.yaml).
        secure_boot: rc.secureBootKey ? { cert_sha256: rc.secureBootKey.certSha256, test_key: rc.secureBootKey.testKey } : null,
      },
      releaseKey: signer,
    });
  } catch (e) {
    if (e instanceof VaultError) throw new InfraError(`run ${rc.vault.runId}: the release bundle was not written: ${e.message}`);
    throw e;
  }
  return { ...done, bundle, releaseKeyId: signer.keyid };
}

export { bundlesDir };

/**
 * LAVA labs' verdicts on this run's ISOs (clawos-build lava ingest, any earlier
 * run), attested with them: each verdict record, job and log, as reports.
 */
async function lavaSubjects(buildDir: string, events: readonly VaultEvent[]): Promise<{ path: string; sha256: string; kind: 'report' }[]> {
  const isos = new Set<string>();
  for (const e of events) {
    if (isEvent(e, 'task-end') && e.payload.status === 'PASS') for (const o of e.payload.outputs) if (o.path.endsWith('.iso')) isos.add(o.sha256);
  }
  if (!isos.size) return [];
  const out: { path: string; sha256: string; kind: 'report' }[] = [];
  for (const f of lavaEvidenceFiles(await readAllRuns(buildDir), isos)) if (await storeHas(buildDir, f.sha256)) out.push({ ...f, kind: 'report' });
  return out;
}
