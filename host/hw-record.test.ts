import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useTmpDirs } from '../test/helpers/tmp-dirs.js';
import { addTrustEntry, initKey, loadTrust } from '../vault/keys.js';
import { readHwRecords } from '../vault/hw-record.js';
import { loadExpectedChecks } from '../pipeline/boot/guest-boot.js';
import { AREA_BYTES, areaOffset, writeResultsArea } from './results-area.js';
import { EXPECTED_CHECKS_FILE, parseMachine, recordHardware } from './hw-record.js';

const tmp = useTmpDirs();
const REPO = process.cwd();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const MACHINE = [
  'CLAWOS-MACHINE arch=x86_64',
  'CLAWOS-MACHINE vendor=ClawOS Test Lab',
  'CLAWOS-MACHINE product=Stand-in PC 1',
  'CLAWOS-MACHINE firmware=1.16.2-debian-1.16.2-1',
  'CLAWOS-MACHINE cpu_model=QEMU Virtual CPU version 2.5+',
  'CLAWOS-MACHINE cpu_flags=fpu de pse tsc',
  'CLAWOS-MACHINE mem_total_kb=487236',
  'CLAWOS-MACHINE boot_path=BIOS',
  'CLAWOS-MACHINE secure_boot=off',
];

/** The protocol lines an x86_64 boot prints, every expected check with `fail` failing. */
async function protocol(fail?: string): Promise<string[]> {
  const checks = await loadExpectedChecks(join(REPO, EXPECTED_CHECKS_FILE), 'x86_64', { cpu_flags: ['x'] });
  const lines = checks.map((c) => `CLAWOS-CHECK name=${c} result=${c === fail ? 'fail' : 'pass'} value=${c === fail ? 'broken' : 'ok'}`);
  lines.push(fail ? `CLAWOS-BOOT-FAILED failed=${fail}` : `CLAWOS-BOOT-OK passed=${checks.length}`);
  return lines;
}

/** A stick image whose results area holds `body` as the guest writes it (results.sh's format). */
async function stickWith(d: string, body: string | null, o: { isoSha?: string } = {}): Promise<{ img: string; iso: string; isoSha: string }> {
  const isoBytes = randomBytes(2_000_000);
  const iso = join(d, 'clawos.iso');
  await writeFile(iso, isoBytes);
  const img = join(d, `stick-${randomBytes(3).toString('hex')}.img`);
  await writeFile(img, isoBytes);
  const isoSha = sha(isoBytes);
  await writeResultsArea(img, { iso_sha256: o.isoSha ?? isoSha, iso_bytes: isoBytes.length });
  if (body !== null) {
    const b = Buffer.from(body);
    const fh = await open(img, 'r+');
    const size = (await fh.stat()).size;
    await fh.write(Buffer.concat([Buffer.from(`CLAWOS-RESULTS v1 bytes=${b.length} sha256=${sha(b)}\n`), b]), 0, undefined, areaOffset(size) + 512);
    await fh.close();
  }
  return { img, iso, isoSha };
}

/** Write `body` into an image's results area as results.sh does. */
async function writeResults(img: string, body: Buffer, claimBytes = body.length): Promise<void> {
  const fh = await open(img, 'r+');
  try {
    await fh.write(Buffer.concat([Buffer.from(`CLAWOS-RESULTS v1 bytes=${claimBytes} sha256=${sha(body)}\n`), body]), 0, undefined, areaOffset((await fh.stat()).size) + 512);
  } finally {
    await fh.close();
  }
}

async function keys(d: string, role: 'tester' | 'security' = 'tester'): Promise<{ keyDir: string; trustFile: string }> {
  const keyDir = join(d, 'keys');
  const k = await initKey(keyDir, role, role === 'tester' ? { name: 'Ada Tester' } : {});
  await addTrustEntry(join(keyDir, 'keys.json'), k.trustEntry);
  return { keyDir, trustFile: join(keyDir, 'keys.json') };
}

async function appended(buildDir: string): Promise<string[]> {
  return readdir(join(buildDir, 'vault', 'hw')).catch(() => []);
}

describe('hw record', () => {
  it('reads a stick image, judges it, signs it as the tester and appends it', async () => {
    const d = await tmp();
    const { keyDir, trustFile } = await keys(d);
    const good = await stickWith(d, null);
    const b = Buffer.from([`iso_sha256=${good.isoSha}`, ...MACHINE, ...(await protocol()), '--- dmesg', '[    0.000000] Linux version 6.1.192-clawos'].join('\n') + '\n');
    await writeResults(good.img, b);
    const buildDir = join(d, 'build');
    const r = await recordHardware({ source: good.img, buildDir, repoRoot: REPO, keyDir, trustFile, now: new Date('2026-12-06T07:00:00Z') });
    if (!r.ok) throw new Error(r.message);
    expect(r.record).toMatchObject({
      iso: { sha256: good.isoSha, arch: 'x86_64' },
      machine: { vendor: 'ClawOS Test Lab', product: 'Stand-in PC 1', firmware: '1.16.2-debian-1.16.2-1', boot_path: 'BIOS', secure_boot: 'off', mem_total_kb: 487236 },
      verdict: 'PASS',
      source: { kind: 'image', path: resolve(good.img) },
      tester: { name: 'Ada Tester' },
      recorded_at: '2026-12-06T07:00:00.000Z',
    });
    const read = await readHwRecords(buildDir, await loadTrust(trustFile));
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ counted: true, signer: { name: 'Ada Tester' } });
    // The results text itself is kept in the content store under the sha256 the record names.
    expect(await readFile(join(buildDir, 'vault', 'store', 'sha256', r.record.results_sha256), 'utf8')).toBe(b.toString('utf8'));
  });

  it('a failing check is recorded as FAIL, naming it', async () => {
    const d = await tmp();
    const { keyDir, trustFile } = await keys(d);
    const s = await stickWith(d, null);
    await writeResults(s.img, Buffer.from([`iso_sha256=${s.isoSha}`, ...MACHINE, ...(await protocol('lockdown'))].join('\n') + '\n'));
    const r = await recordHardware({ source: s.img, buildDir: join(d, 'build'), repoRoot: REPO, keyDir, trustFile });
    if (!r.ok) throw new Error(r.message);
    expect(r.record.verdict).toBe('FAIL');
    expect(r.record.failed_checks).toEqual(['lockdown']);
    expect(r.record.message).toBe('CLAWOS-BOOT-FAILED failed=lockdown: lockdown failed (broken)');
  });

  it('refuses a missing, empty, truncated or other-ISO results area, appending nothing', async () => {
    const d = await tmp();
    const { keyDir, trustFile } = await keys(d);
    const buildDir = join(d, 'build');
    const go = (source: string, extra: { sha256?: string } = {}) => recordHardware({ source, buildDir, repoRoot: REPO, keyDir, trustFile, ...extra });

    const plain = join(d, 'plain.img');
    await writeFile(plain, Buffer.alloc(AREA_BYTES + 1024 * 1024));
    expect(await go(plain)).toMatchObject({ ok: false, reason: 'not-results', message: `${plain} holds neither a ClawOS results area nor a serial console capture of a ClawOS boot (no CLAWOS- protocol lines)` });

    const empty = await stickWith(d, null);
    expect(await go(empty.img)).toMatchObject({ ok: false, reason: 'no-results' });

    const t = await stickWith(d, null);
    const body = Buffer.from([`iso_sha256=${t.isoSha}`, ...MACHINE, ...(await protocol())].join('\n') + '\n');
    // The guest's line promises more bytes than were written.
    await writeResults(t.img, body, body.length + 100);
    const tr = await go(t.img);
    expect(tr).toMatchObject({ ok: false, reason: 'truncated' });

    // An area made for another ISO than the one on the stick (the stick was re-written by hand).
    const other = await stickWith(d, null, { isoSha: 'b'.repeat(64) });
    await writeResults(other.img, Buffer.from([`iso_sha256=${'b'.repeat(64)}`, ...MACHINE, ...(await protocol())].join('\n') + '\n'));
    const o = await go(other.img);
    expect(o).toMatchObject({ ok: false, reason: 'other-iso' });
    expect(o.ok ? '' : o.message).toBe(`${other.img}: the results area is from another ISO: it was made for sha256 ${'b'.repeat(64)}, but the ISO on the stick (its first 2000000 bytes) has sha256 ${other.isoSha}`);

    // Results written for another ISO than the area's.
    const w = await stickWith(d, null);
    const wb = Buffer.from([`iso_sha256=${'c'.repeat(64)}`, ...MACHINE, ...(await protocol())].join('\n') + '\n');
    await writeResults(w.img, wb);
    expect(await go(w.img)).toMatchObject({ ok: false, reason: 'other-iso', message: `${w.img}: the results were written for another ISO (${'c'.repeat(64)}), not the ${w.isoSha} this stick holds` });

    expect(await appended(buildDir)).toEqual([]);
  });

  it('a serial console capture needs the ISO named, and is recorded for it', async () => {
    const d = await tmp();
    const { keyDir, trustFile } = await keys(d);
    const log = join(d, 'console.log');
    await writeFile(log, ['SeaBIOS (version 1.16.2-debian-1.16.2-1)', 'CLAWOS-INIT arch=x86_64 mem_used_kb=1 mem_total_kb=2', ...MACHINE, ...(await protocol())].join('\r\n') + '\r\n');
    const buildDir = join(d, 'build');
    await expect(recordHardware({ source: log, buildDir, repoRoot: REPO, keyDir, trustFile })).rejects.toThrow(`${log} is a serial console capture: it does not say which ISO was booted`);
    const r = await recordHardware({ source: log, buildDir, repoRoot: REPO, keyDir, trustFile, sha256: 'A'.repeat(64) });
    if (!r.ok) throw new Error(r.message);
    expect(r.record).toMatchObject({ iso: { sha256: 'a'.repeat(64), arch: 'x86_64' }, verdict: 'PASS', source: { kind: 'serial-log' } });
  });

  it('without a tester key nothing is signed', async () => {
    const d = await tmp();
    const { keyDir, trustFile } = await keys(d, 'security');
    const log = join(d, 'console.log');
    await writeFile(log, [...MACHINE, ...(await protocol())].join('\n'));
    await expect(recordHardware({ source: log, buildDir: join(d, 'b'), repoRoot: REPO, keyDir, trustFile, sha256: 'a'.repeat(64) })).rejects.toThrow(`no tester key in ${keyDir}: a hardware record is signed by the tester who booted the machine`);
  });

  it('parses the machine lines, unknown when absent', () => {
    expect(parseMachine('CLAWOS-INIT arch=aarch64 mem_used_kb=1\n')).toEqual({
      arch: 'aarch64', vendor: 'unknown', product: 'unknown', firmware: 'unknown', boot_path: 'unknown', secure_boot: 'unknown', cpu_model: 'unknown', cpu_flags: 'unknown', mem_total_kb: null,
    });
  });
});
