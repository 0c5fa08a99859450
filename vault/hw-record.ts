/**
 * Hardware records (issue 15): what a tester saw when a real machine booted a
 * ClawOS ISO from a stick, bound to the ISO's sha256 and signed by the tester's
 * key (role `tester`, with the tester's name) as a DSSE envelope, kept in
 * <build>/vault/hw/<record id>.dsse.json. The record id is the sha256 of the
 * envelope's bytes, so a record is appended once and never rewritten.
 * Whether a record counts is decided when it is read, against the caller's
 * trust file: a record signed by a key that is not a trusted tester key is
 * listed with the reason and never counted.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { sha256Hex } from '../lib/hash.js';
import { envelopeBytes, parseEnvelope, signEnvelope, verifyEnvelope } from './dsse.js';
import { canonicalBytes } from './jcs.js';
import type { Signer, TrustRoot } from './keys.js';
import type { FailCode } from './codes.js';

export const HW_RECORD_PAYLOAD_TYPE = 'application/vnd.clawos.hw-record+json';

export interface HwMachine {
  vendor: string;
  product: string;
  /** The firmware's version string (DMI bios_version). */
  firmware: string;
  boot_path: 'BIOS' | 'UEFI' | 'unknown';
  secure_boot: 'on' | 'off' | 'unknown';
  cpu_model: string;
  cpu_flags: string;
  mem_total_kb: number | null;
}

export interface HwCheck {
  name: string;
  result: 'pass' | 'fail';
  value: string;
}

export interface HwRecordPayload {
  format: 'clawos-hw-record';
  version: 1;
  iso: { sha256: string; arch: string };
  machine: HwMachine;
  /** The serial classifier's verdict of the results (qemu/classify-boot.ts), as for a QEMU boot. */
  verdict: string;
  reason: string | null;
  message: string;
  checks: HwCheck[];
  failed_checks: string[];
  missing_checks: string[];
  /** Where the results were read: the stick, a disk image, or a saved serial console. */
  source: { kind: 'device' | 'image' | 'serial-log'; path: string };
  /** sha256 of the results text exactly as read (kept in the content store). */
  results_sha256: string;
  tester: { keyid: string; name: string };
  recorded_at: string;
}

export function hwDir(buildDir: string): string {
  return join(buildDir, 'vault', 'hw');
}

/** Sign a record with the tester's key and append it; returns the record id and file. */
export async function appendHwRecord(buildDir: string, payload: HwRecordPayload, signer: Signer): Promise<{ id: string; path: string }> {
  const env = signEnvelope(canonicalBytes(payload), HW_RECORD_PAYLOAD_TYPE, [signer]);
  const bytes = envelopeBytes(env);
  const id = sha256Hex(bytes);
  const path = join(hwDir(buildDir), `${id}.dsse.json`);
  await writeFileAtomic(path, bytes, 0o444);
  return { id, path };
}

export type ReadHwRecord =
  | { file: string; id: string; counted: true; record: HwRecordPayload; signer: { keyid: string; name: string } }
  | { file: string; id: string; counted: false; code: FailCode; detail: string; record: HwRecordPayload | null };

/** Every record of the vault, each checked against `trust` for the tester role (oldest file name first: ids sort, order is not meaningful). */
export async function readHwRecords(buildDir: string, trust: TrustRoot, at: Date = new Date()): Promise<ReadHwRecord[]> {
  const dir = hwDir(buildDir);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.dsse.json')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ReadHwRecord[] = [];
  for (const name of names) out.push(checkHwRecord(join(dir, name), await readFile(join(dir, name)), trust, at));
  return out;
}

/** One envelope checked: its bytes must be the record id, its signature a trusted tester's. */
export function checkHwRecord(file: string, bytes: Buffer, trust: TrustRoot, at: Date = new Date()): ReadHwRecord {
  const id = sha256Hex(bytes);
  const name = file.split('/').at(-1)!;
  if (name !== `${id}.dsse.json`) return { file, id, counted: false, code: 'HASH_MISMATCH', detail: `${name}: its sha256 is ${id}: the record was changed after it was appended`, record: null };
  const p = parseEnvelope(bytes, HW_RECORD_PAYLOAD_TYPE, name);
  if (!p.ok) return { file, id, counted: false, code: p.code, detail: p.detail, record: null };
  let record: HwRecordPayload | null = null;
  try {
    const r = JSON.parse(p.payload.toString('utf8')) as HwRecordPayload;
    if (r.format === 'clawos-hw-record' && r.version === 1 && r.iso && r.machine) record = r;
  } catch {
    // handled below
  }
  if (!record) return { file, id, counted: false, code: 'INVALID_SCHEMA', detail: `${name}: the payload is not a clawos-hw-record version 1`, record: null };
  const v = verifyEnvelope(p, trust, ['tester'], name, at);
  if (!v.ok) return { file, id, counted: false, code: v.code, detail: v.detail, record };
  const signer = v.signers[0]!;
  // The name shown is the trust file's, not the one the record claims.
  if (signer.keyid !== record.tester.keyid) {
    return { file, id, counted: false, code: 'INVALID_SIGNATURE', detail: `${name}: signed by tester key ${signer.keyid}, but the record names key ${record.tester.keyid}`, record };
  }
  return { file, id, counted: true, record, signer: { keyid: signer.keyid, name: signer.name ?? record.tester.name } };
}
