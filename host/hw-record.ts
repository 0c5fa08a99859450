/**
 * `clawos-build hw record DEVICE|IMAGE|SERIAL-LOG` (issue 15): read what a real
 * machine reported when it booted ClawOS from a stick, judge it with the QEMU
 * boots' own classifier, bind it to the ISO's sha256, sign it with the tester's
 * key and append it to the vault (vault/hw-record.ts).
 *
 * A stick or disk image: the results area (host/results-area.ts) must be there,
 * whole, and written for the ISO the stick holds (the sha256 of its first
 * iso_bytes bytes must be the header's, and the results must name the same
 * ISO); else the record is refused with the reason and nothing is appended.
 * A serial console capture carries no ISO identity: --iso or --sha256 names it.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { UserError } from '../lib/errors.js';
import { sha256File } from '../lib/hash.js';
import { classifyBoot, stripAnsi } from '../qemu/classify-boot.js';
import { loadArches } from '../pipeline/catalog/arch.js';
import { loadExpectedChecks } from '../pipeline/boot/guest-boot.js';
import { findSigner } from '../vault/key-dir.js';
import { loadTrust } from '../vault/keys.js';
import { storePutBytes } from '../vault/store.js';
import { appendHwRecord, type HwMachine, type HwRecordPayload } from '../vault/hw-record.js';
import { readResultsArea } from './results-area.js';

export const EXPECTED_CHECKS_FILE = 'buildroot-external/board/clawos/checks.yaml';

export type HwRefusal = 'no-area' | 'no-results' | 'truncated' | 'other-iso' | 'not-results';

export interface HwRecordOptions {
  source: string;
  buildDir: string;
  repoRoot: string;
  keyDir: string;
  trustFile: string;
  /** The ISO the results must be for (a file, hashed) or its sha256. */
  iso?: string;
  sha256?: string;
  now?: Date;
}

export type HwRecordResult =
  | { ok: true; recorded: true; id: string; file: string; record: HwRecordPayload }
  | { ok: false; recorded: false; reason: HwRefusal; message: string };

const HEX64 = /^[0-9a-f]{64}$/;

/** The CLAWOS-MACHINE key=value lines of a results text or console capture. */
export function parseMachine(text: string): HwMachine & { arch: string | null } {
  const kv = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = stripAnsi(raw).trimEnd();
    const m = /CLAWOS-MACHINE (\w+)=(.*)$/.exec(line);
    if (m && !kv.has(m[1]!)) kv.set(m[1]!, m[2]!.trim());
  }
  const init = /CLAWOS-INIT arch=(\S+)/.exec(text);
  const bootPath = kv.get('boot_path');
  const sb = kv.get('secure_boot');
  const mem = Number(kv.get('mem_total_kb'));
  return {
    arch: kv.get('arch') ?? init?.[1] ?? null,
    vendor: kv.get('vendor') ?? 'unknown',
    product: kv.get('product') ?? 'unknown',
    firmware: kv.get('firmware') ?? 'unknown',
    boot_path: bootPath === 'BIOS' || bootPath === 'UEFI' ? bootPath : 'unknown',
    secure_boot: sb === 'on' || sb === 'off' ? sb : 'unknown',
    cpu_model: kv.get('cpu_model') ?? 'unknown',
    cpu_flags: kv.get('cpu_flags') ?? 'unknown',
    mem_total_kb: Number.isSafeInteger(mem) ? mem : null,
  };
}

/** One line naming a machine: "QEMU Standard PC (Q35 + ICH9, 2009) (firmware 1.16.2, UEFI, Secure Boot off)". */
export function machineLabel(m: Pick<HwMachine, 'vendor' | 'product' | 'firmware' | 'boot_path' | 'secure_boot'>): string {
  return `${m.vendor} ${m.product} (firmware ${m.firmware}, ${m.boot_path}, Secure Boot ${m.secure_boot})`;
}

async function sha256Prefix(path: string, bytes: number): Promise<string> {
  const fh = await open(path, 'r');
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  let pos = 0;
  try {
    while (pos < bytes) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, bytes - pos), pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

async function wantedSha(o: HwRecordOptions): Promise<string | null> {
  if (o.iso && o.sha256) throw new UserError('give --iso or --sha256, not both');
  if (o.sha256 !== undefined) {
    const s = o.sha256.toLowerCase();
    if (!HEX64.test(s)) throw new UserError(`--sha256 takes 64 hex digits, not "${o.sha256}"`);
    return s;
  }
  if (o.iso) {
    const st = await stat(o.iso).catch(() => null);
    if (!st?.isFile()) throw new UserError(`--iso ${o.iso} is not a readable file`);
    return sha256File(o.iso);
  }
  return null;
}

const refuse = (reason: HwRefusal, message: string): HwRecordResult => ({ ok: false, recorded: false, reason, message });

export async function recordHardware(o: HwRecordOptions): Promise<HwRecordResult> {
  const st = await stat(o.source).catch(() => null);
  if (!st) throw new UserError(`${o.source} does not exist`);
  if (!st.isFile() && !st.isBlockDevice()) throw new UserError(`${o.source} is neither a disk, a disk image nor a serial console capture`);
  const want = await wantedSha(o);
  let kind: HwRecordPayload['source']['kind'];
  let results: Buffer;
  let isoSha: string;
  const area = await readResultsArea(o.source);
  if (area.ok) {
    kind = st.isBlockDevice() ? 'device' : 'image';
    const onStick = await sha256Prefix(o.source, area.header.iso_bytes);
    if (onStick !== area.header.iso_sha256) {
      return refuse('other-iso', `${o.source}: the results area is from another ISO: it was made for sha256 ${area.header.iso_sha256}, but the ISO on the stick (its first ${area.header.iso_bytes} bytes) has sha256 ${onStick}`);
    }
    const named = /^iso_sha256=([0-9a-f]{64})$/m.exec(area.results.toString('latin1'))?.[1];
    if (named !== area.header.iso_sha256) {
      return refuse('other-iso', `${o.source}: the results were written for another ISO (${named ?? 'none named'}), not the ${area.header.iso_sha256} this stick holds`);
    }
    if (want && want !== area.header.iso_sha256) {
      return refuse('other-iso', `${o.source}: the stick holds ISO sha256 ${area.header.iso_sha256}, not the ${want} given`);
    }
    isoSha = area.header.iso_sha256;
    results = area.results;
  } else if (area.reason !== 'no-area' || st.isBlockDevice()) {
    return refuse(area.reason, area.message);
  } else {
    // No area: a serial console capture, if it holds the guest's protocol.
    const text = await readFile(o.source);
    if (!/CLAWOS-(?:CHECK|BOOT-OK|BOOT-FAILED|MACHINE)\b/.test(text.toString('latin1'))) {
      return refuse('not-results', `${o.source} holds neither a ClawOS results area nor a serial console capture of a ClawOS boot (no CLAWOS- protocol lines)`);
    }
    if (!want) throw new UserError(`${o.source} is a serial console capture: it does not say which ISO was booted`, 'name it with --iso ISO or --sha256 HEX');
    kind = 'serial-log';
    isoSha = want;
    results = text;
  }
  const text = results.toString('utf8');
  const machine = parseMachine(text);
  const arches = await loadArches(o.repoRoot);
  const arch = machine.arch ? arches.get(machine.arch) : undefined;
  if (!arch) {
    return refuse('not-results', `${o.source}: the results do not say which architecture booted (${machine.arch ?? 'no CLAWOS-MACHINE arch= or CLAWOS-INIT arch= line'}; known: ${[...arches.keys()].join(', ')})`);
  }
  const expected = await loadExpectedChecks(resolve(o.repoRoot, EXPECTED_CHECKS_FILE), arch.name, arch.guest as unknown as Record<string, unknown>);
  const c = classifyBoot({ log: text, expectedChecks: expected });

  const trust = await loadTrust(o.trustFile);
  const signer = await findSigner(o.keyDir, 'tester', o.trustFile);
  if (!signer) {
    throw new UserError(`no tester key in ${o.keyDir}: a hardware record is signed by the tester who booted the machine`, 'make one with `clawos-build keys init --role tester --name "Your Name"`');
  }
  const entry = trust.byId.get(signer.keyid)?.entry;
  const name = entry?.name ?? 'unknown';
  const resultsSha = await storePutBytes(o.buildDir, results);
  const { arch: _a, ...desc } = machine;
  const record: HwRecordPayload = {
    format: 'clawos-hw-record',
    version: 1,
    iso: { sha256: isoSha, arch: arch.name },
    machine: desc,
    verdict: c.verdict,
    reason: c.reason,
    message: c.message,
    checks: c.checks,
    failed_checks: c.failedChecks,
    missing_checks: c.missingChecks,
    source: { kind, path: resolve(o.source) },
    results_sha256: resultsSha,
    tester: { keyid: signer.keyid, name },
    recorded_at: (o.now ?? new Date()).toISOString(),
  };
  const a = await appendHwRecord(o.buildDir, record, signer);
  return { ok: true, recorded: true, id: a.id, file: a.path, record };
}
