/**
 * Phases in order, each ending in its gate. A phase refuses to start until the
 * previous gate said GO on the same inputs (the fingerprints of its task
 * instances now equal the ones the gate judged).
 */
import { UserError } from '../lib/errors.js';
import { readManifest, recordInManifest } from '../vault/manifest.js';
import { evaluateGate, writeGateReport, type GateReport, type GateSpec } from './gates.js';
import { phaseInstances } from './graph.js';
import { computeFingerprint, runInstances, type RunContext } from './scheduler.js';
import { describeChange } from './explain-change.js';
import type { GateRecord, InstanceRecord } from './state.js';
import { PHASES, type Phase } from './task-spec.js';
import { sha256File } from '../lib/hash.js';
import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { stableJson } from './fingerprint.js';

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
      const why = describeChange(rc.state.instance(inst.id)?.fingerprint_parts, parts as unknown as Record<string, unknown>);
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
  const fingerprints = Object.fromEntries(instances.map((i) => [i.id, rc.state.instance(i.id)?.fingerprint ?? '']));
  // Nothing changed since the recorded decision: re-check its evidence, keep its reports.
  const prev = rc.state.gate(phase);
  if (prev && stableJson(prev.fingerprints) === stableJson(fingerprints) && stableJson(prev.arches) === stableJson([...rc.graph.arches])) {
    const kept = await keptGate(rc, prev);
    if (kept) {
      rc.emit({ type: 'gate', phase, recommendation: kept.recommendation, blockers: kept.blockers, coverage: kept.coverage.line, report: prev.report_md });
      return { phase, records, gate: kept };
    }
  }
  const gate = await evaluateGate({ phase, spec, instances, state: rc.state, arches: [...rc.graph.arches], buildDir: rc.buildDir, hashCache: rc.hashCache });
  const rec = await writeGateReport(rc.buildDir, gate, fingerprints);
  const entries = [];
  for (const rel of [rec.report_json, rec.report_md]) {
    const abs = join(rc.buildDir, rel);
    entries.push({ path: rel, sha256: await sha256File(abs), size: (await stat(abs)).size });
  }
  await recordInManifest(rc.buildDir, `gate:${phase}`, entries);
  await rc.state.putGate(rec);
  await rc.hashCache.save();
  rc.emit({ type: 'gate', phase, recommendation: gate.recommendation, blockers: gate.blockers, coverage: gate.coverage.line, report: rec.report_md });
  return { phase, records, gate };
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
