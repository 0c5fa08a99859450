import { describe, expect, it } from 'vitest';
import { readFile, readdir, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { useTmpDirs } from '../test/helpers/tmp-dirs.js';
import { addTrustEntry, initKey, loadSigner, loadTrust } from './keys.js';
import { appendHwRecord, hwDir, readHwRecords, type HwRecordPayload } from './hw-record.js';

const tmp = useTmpDirs();

function payload(keyid: string, name = 'Ada Tester'): HwRecordPayload {
  return {
    format: 'clawos-hw-record',
    version: 1,
    iso: { sha256: 'a'.repeat(64), arch: 'x86_64' },
    machine: { vendor: 'V', product: 'P', firmware: 'F', boot_path: 'UEFI', secure_boot: 'on', cpu_model: 'C', cpu_flags: 'f', mem_total_kb: 1 },
    verdict: 'PASS',
    reason: null,
    message: 'CLAWOS-BOOT-OK, all 1 expected checks passed',
    checks: [{ name: 'kernel', result: 'pass', value: 'x' }],
    failed_checks: [],
    missing_checks: [],
    source: { kind: 'image', path: '/x.img' },
    results_sha256: 'b'.repeat(64),
    tester: { keyid, name },
    recorded_at: '2026-12-06T07:00:00.000Z',
  };
}

describe('hardware records in the vault', () => {
  it('a tester key needs a name', async () => {
    const d = await tmp();
    await expect(initKey(d, 'tester')).rejects.toThrow("a tester key needs the tester's name");
  });

  it('counts a record signed by a trusted tester key, with the trust file\'s name', async () => {
    const d = await tmp();
    const k = await initKey(join(d, 'keys'), 'tester', { name: 'Ada Tester' });
    const trustFile = join(d, 'keys', 'keys.json');
    await addTrustEntry(trustFile, k.trustEntry);
    const a = await appendHwRecord(d, payload(k.keyid), await loadSigner(k.privateKeyPath, 'tester'));
    const [r] = await readHwRecords(d, await loadTrust(trustFile));
    expect(r).toMatchObject({ id: a.id, counted: true, signer: { keyid: k.keyid, name: 'Ada Tester' } });
  });

  it('does not count a record whose key is not a trusted tester key, and says why', async () => {
    const d = await tmp();
    const tester = await initKey(join(d, 'keys'), 'tester', { name: 'Mallory' });
    const other = await initKey(join(d, 'keys'), 'security');
    const trustFile = join(d, 'trust.json');
    // Only the security key is trusted; the tester key is unknown to this trust file.
    await addTrustEntry(trustFile, other.trustEntry);
    const a = await appendHwRecord(d, payload(tester.keyid, 'Mallory'), await loadSigner(tester.privateKeyPath, 'tester'));
    const [r] = await readHwRecords(d, await loadTrust(trustFile));
    expect(r).toMatchObject({ counted: false, code: 'UNKNOWN_KEY', detail: `${a.id}.dsse.json: no signature by a trusted tester key (key ${tester.keyid} is not in the trust root)` });
    // A key trusted in another role is not a tester's either.
    const b = await appendHwRecord(d, payload(other.keyid), await loadSigner(other.privateKeyPath, 'security'));
    const rs = await readHwRecords(d, await loadTrust(trustFile));
    expect(rs.find((x) => x.id === b.id)).toMatchObject({ counted: false, code: 'UNKNOWN_KEY', detail: `${b.id}.dsse.json: no signature by a trusted tester key (key ${other.keyid} is trusted as security, not as tester)` });
  });

  it('a record changed after it was appended does not count', async () => {
    const d = await tmp();
    const k = await initKey(join(d, 'keys'), 'tester', { name: 'Ada Tester' });
    const trustFile = join(d, 'keys', 'keys.json');
    await addTrustEntry(trustFile, k.trustEntry);
    const a = await appendHwRecord(d, payload(k.keyid), await loadSigner(k.privateKeyPath, 'tester'));
    const text = await readFile(a.path, 'utf8');
    await chmod(a.path, 0o644);
    await writeFile(a.path, text.replace('"payload":"', '"payload":"e30K'));
    const [r] = await readHwRecords(d, await loadTrust(trustFile));
    expect(r!.counted).toBe(false);
    expect(r).toMatchObject({ code: 'HASH_MISMATCH' });
    expect(await readdir(hwDir(d))).toEqual([`${a.id}.dsse.json`]);
  });
});
