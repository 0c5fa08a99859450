/**
 * Boot evidence by lab, from the vault's event chains: for each ISO (sha256),
 * arch and boot variant, what every lab said: the built-in boot lab (G-06's
 * boot-verdict events, bound to the ISO G-05 recorded in the same run) and each
 * LAVA lab whose results were ingested (boot-verdict events with a `source`).
 * Per lab the latest verdict counts and its earlier attempts are kept: a lab
 * whose attempts differ is flaky; labs whose latest verdicts differ disagree,
 * and are shown as disagreeing, never averaged into one verdict.
 */
import type { VaultEvent } from './event-chain.js';
import { isEvent, type LavaSource } from './event-payloads.js';

/** The name the built-in boot lab (the build's own QEMU boots) goes by beside LAVA labs. */
export const BUILT_IN_LAB = 'clawos-build (G-06)';

export interface LabAttempt {
  verdict: string;
  reason: string | null;
  message: string;
  run_id: string;
  seq: number;
  time: string;
  /** LAVA only: job id, device kind, attempt number. */
  job_id?: string;
  device_kind?: LavaSource['device_kind'];
  attempt?: number;
}

export interface LabEvidence {
  lab: string;
  kind: 'built-in' | 'lava';
  latest: LabAttempt;
  attempts: LabAttempt[];
  /** The lab's attempts did not all end the same way. */
  flaky: boolean;
}

export interface BootEvidence {
  iso_sha256: string;
  arch: string;
  variant: string;
  labs: LabEvidence[];
  /** Latest verdicts of two or more labs differ. */
  disagree: boolean;
}

/** Fold the runs' verified events (oldest run first) into evidence per ISO, arch and variant. */
export function foldBootEvidence(runs: readonly { runId: string; events: readonly VaultEvent[] }[]): BootEvidence[] {
  const by = new Map<string, { iso: string; arch: string; variant: string; labs: Map<string, LabEvidence> }>();
  const add = (iso: string, arch: string, variant: string, lab: string, kind: LabEvidence['kind'], a: LabAttempt) => {
    const k = `${iso} ${arch} ${variant}`;
    const e = by.get(k) ?? { iso, arch, variant, labs: new Map<string, LabEvidence>() };
    by.set(k, e);
    const l: LabEvidence = e.labs.get(lab) ?? { lab, kind, latest: a, attempts: [], flaky: false };
    l.attempts.push(a);
    l.latest = a;
    l.flaky = new Set(l.attempts.map((x) => x.verdict)).size > 1;
    e.labs.set(lab, l);
  };
  for (const r of runs) {
    // The ISO each arch's G-06 booted in this run: G-05's .iso output as recorded here.
    const isoOf = new Map<string, string>();
    for (const e of r.events) {
      if (!isEvent(e, 'task-end') || !e.payload.task.startsWith('G-05@')) continue;
      const iso = (e.payload.outputs ?? []).find((o) => o.path.endsWith('.iso'));
      if (iso && e.payload.arch) isoOf.set(e.payload.arch, iso.sha256);
    }
    for (const e of r.events) {
      if (!isEvent(e, 'boot-verdict')) continue;
      const p = e.payload;
      const at = { verdict: p.verdict, reason: p.reason ?? null, message: p.message, run_id: r.runId, seq: e.seq, time: e.time };
      if (p.source?.kind === 'lava' && p.iso_sha256) {
        add(p.iso_sha256, p.arch, p.variant, p.source.lab, 'lava', { ...at, job_id: p.source.job_id, device_kind: p.source.device_kind, attempt: p.source.attempt });
      } else if (!p.source && p.task.startsWith('G-06@') && !p.up_to_date) {
        const iso = p.iso_sha256 ?? isoOf.get(p.arch);
        if (iso) add(iso, p.arch, p.variant, BUILT_IN_LAB, 'built-in', at);
      }
    }
  }
  return [...by.values()]
    .filter((e) => [...e.labs.values()].some((l) => l.kind === 'lava'))
    .map((e) => {
      const labs = [...e.labs.values()].sort((a, b) => (a.kind === b.kind ? a.lab.localeCompare(b.lab) : a.kind === 'built-in' ? -1 : 1));
      return { iso_sha256: e.iso, arch: e.arch, variant: e.variant, labs, disagree: new Set(labs.map((l) => l.latest.verdict)).size > 1 };
    })
    .sort((a, b) => a.arch.localeCompare(b.arch) || a.variant.localeCompare(b.variant) || a.iso_sha256.localeCompare(b.iso_sha256));
}

/** One line per ISO, arch and variant: each lab's verdict, DISAGREE when they differ, flaky labs marked. */
export function bootEvidenceLines(ev: readonly BootEvidence[]): string[] {
  return ev.map((e) => {
    const labs = e.labs
      .map((l) => {
        const hist = l.attempts.length > 1 ? ` (attempts: ${l.attempts.map((x) => x.verdict).join(' then ')}${l.flaky ? ', flaky' : ''})` : '';
        const kind = l.latest.device_kind ? `, ${l.latest.device_kind}` : '';
        const job = l.latest.job_id ? ` job ${l.latest.job_id}${kind}` : '';
        return `${l.lab}${job}: ${l.latest.verdict}${l.latest.reason ? ` [${l.latest.reason}]` : ''}${hist}`;
      })
      .join('; ');
    return `${e.arch} ${e.variant} ISO ${e.iso_sha256.slice(0, 12)}: ${e.disagree ? 'DISAGREE: ' : ''}${labs}`;
  });
}

/**
 * The LAVA evidence a release bundle carries: for every LAVA-sourced verdict on
 * one of `isoShas` (the ISOs the bundle attests), its verdict record, job and
 * log as they were ingested (build-relative paths, in the content store).
 */
export function lavaEvidenceFiles(runs: readonly { events: readonly VaultEvent[] }[], isoShas: ReadonlySet<string>): { path: string; sha256: string }[] {
  const files = new Map<string, string>();
  for (const r of runs) {
    for (const e of r.events) {
      if (!isEvent(e, 'boot-verdict')) continue;
      const p = e.payload;
      if (p.source?.kind !== 'lava' || !p.iso_sha256 || !isoShas.has(p.iso_sha256)) continue;
      for (const f of [p.record, p.serial_log, p.source.job, p.source.log]) if (f) files.set(f.path, f.sha256);
    }
  }
  return [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, sha256]) => ({ path, sha256 }));
}
