/**
 * Negative Secure Boot boots, for real: the snakeoil OVMF (Secure Boot on, db
 * holding Debian's snakeoil cert) must refuse an unsigned UKI and a signed UKI
 * altered after signing, and the boot must be classified FAIL at the firmware
 * stage with the firmware's own words; the same UKI signed and untouched is
 * loaded (no refusal). The UKI is the real assembly (locked systemd-boot-efi
 * stub, objcopy, sbsign); its kernel is a placeholder, since the firmware
 * verifies the signature before anything in it runs. Each UKI is the removable-
 * media loader of a FAT image attached as a virtio disk.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from '../lib/proc.js';
import { assembleUki, osRelease } from '../pipeline/boot/uki.js';
import { importSecureBootKey, loadTestCerts } from '../pipeline/boot/secureboot-key.js';
import type { SecureBootKey } from '../pipeline/catalog/step.js';
import { bootIso } from '../qemu/boot.js';
import { findVariant, loadMachine, type QemuMachine } from '../qemu/machine.js';
import { lockedDeb } from './helpers/locked-debs.js';

const REPO = resolve(__dirname, '..');
let work: string;
let key: SecureBootKey;
let machine: QemuMachine;

async function espWith(loader: string, name: string): Promise<string> {
  const img = join(work, `${name}.img`);
  const env = { MTOOLS_SKIP_CHECK: '1' };
  for (const argv of [
    ['mformat', '-i', img, '-C', '-T', '8192', '-h', '64', '-s', '32', '::'],
    ['mmd', '-i', img, '::/EFI', '::/EFI/BOOT'],
    ['mcopy', '-i', img, loader, '::/EFI/BOOT/BOOTX64.EFI'],
  ]) {
    const r = await run(argv, { env });
    if (!r.ok) throw new Error(`${argv[0]}: ${r.tail.join(' / ')}`);
  }
  return img;
}

beforeAll(async () => {
  work = (await tmpDir({ unsafeCleanup: true })).path;
  key = await importSecureBootKey(join(work, 'keys'), { key: '/usr/share/ovmf/PkKek-1-snakeoil.key', cert: '/usr/share/ovmf/PkKek-1-snakeoil.pem', passphrase: 'snakeoil' }, await loadTestCerts(REPO));
  const stub = join((await lockedDeb('systemd-boot-efi', 'amd64')).root, 'usr/lib/systemd/boot/efi/linuxx64.efi.stub');
  for (const [f, text] of [['kernel', 'not a kernel'], ['initrd', 'not an initrd'], ['cmdline', 'console=ttyS0'], ['osrel', osRelease({ version: 't', arch: 'x86_64' })]]) await writeFile(join(work, f!), text!);
  await assembleUki(run, { stub, kernel: join(work, 'kernel'), initrd: join(work, 'initrd'), cmdline: join(work, 'cmdline'), osrel: join(work, 'osrel'), out: join(work, 'unsigned.efi'), objcopy: 'objcopy', epoch: 1763683200 });
  const s = await run(['sbsign', '--key', key.keyPath, '--cert', key.certPath, '--output', join(work, 'signed.efi'), join(work, 'unsigned.efi')]);
  if (!s.ok) throw new Error(s.tail.join(' / '));
  // Tampered after signing: one byte of the command line section changed.
  const buf = await readFile(join(work, 'signed.efi'));
  const at = buf.indexOf('console=ttyS0');
  buf[at] = 'C'.charCodeAt(0);
  await writeFile(join(work, 'tampered.efi'), buf);
  // The Secure Boot variant as qemu/x86_64.yaml defines it, with the image on a virtio disk instead of a CD.
  const m = await loadMachine(REPO, 'qemu/x86_64.yaml');
  machine = { ...m, variants: [{ ...findVariant(m, 'ovmf-secureboot'), iso_args: ['-drive', 'if=virtio,format=raw,snapshot=on,file={iso}'] }] };
}, 180_000);

async function boot(name: string, timeoutS: number) {
  const esp = await espWith(join(work, `${name}.efi`), name);
  return bootIso({ machine, variant: 'ovmf-secureboot', iso: esp, accel: 'tcg', outDir: join(work, `boot-${name}`), expectedChecks: [], timeoutS });
}

describe('Secure Boot refusal under the snakeoil OVMF (real QEMU)', () => {
  it('sbverify accepts only the untouched signed UKI', async () => {
    expect((await run(['sbverify', '--cert', key.certPath, join(work, 'signed.efi')])).ok).toBe(true);
    expect((await run(['sbverify', '--cert', key.certPath, join(work, 'tampered.efi')])).ok).toBe(false);
    expect((await run(['sbverify', '--cert', key.certPath, join(work, 'unsigned.efi')])).ok).toBe(false);
  });

  it.each(['tampered', 'unsigned'])('the firmware refuses the %s UKI: FAIL at the firmware stage, its message quoted', async (name) => {
    const rec = await boot(name, 240);
    expect([rec.verdict, rec.reason, rec.stage]).toEqual(['FAIL', 'boot-firmware-refused', 'firmware']);
    expect(rec.message).toMatch(/^the firmware refused the boot loader: BdsDxe: failed to load Boot\d{4} ".*" from .*: Access Denied$/);
  }, 300_000);

  it('the firmware loads the signed UKI (no refusal; its stub runs and rejects the placeholder kernel)', async () => {
    const rec = await boot('signed', 240);
    const log = await readFile(join(work, 'boot-signed', rec.serial_log), 'utf8');
    expect(log).not.toMatch(/failed to load Boot0001 .*(?:Access Denied|Security Violation)/);
    expect(log).toMatch(/BdsDxe: starting Boot0001 "UEFI Misc Device"/);
    // systemd-stub's own words: its code ran, so the firmware had accepted the signature.
    expect(log).toMatch(/Bad kernel image: Load Error/);
    // Nothing else is bootable (the EFI shell is unsigned): the firmware gives up, not a refusal of the UKI.
    expect([rec.verdict, rec.reason, rec.message]).toEqual(['FAIL', 'boot-marker-missing', 'firmware found nothing to boot: BdsDxe: No bootable option or device was found.']);
  }, 300_000);
});
