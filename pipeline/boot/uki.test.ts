import { beforeAll, describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { lockedDeb } from '../../test/helpers/locked-debs.js';
import { assembleUki, objcopyArgv, osRelease, parsePe, peChecksum, pinTimestamp, placeSections, ukiBlocklists, type PeInfo } from './uki.js';

const STUBS = {
  amd64: { file: 'usr/lib/systemd/boot/efi/linuxx64.efi.stub', objcopy: 'objcopy', dump: 'objdump', machine: 0x8664 },
  arm64: { file: 'usr/lib/systemd/boot/efi/linuxaa64.efi.stub', objcopy: 'aarch64-linux-gnu-objcopy', dump: 'aarch64-linux-gnu-objdump', machine: 0xaa64 },
} as const;
const stub: Record<string, string> = {};
beforeAll(async () => {
  for (const a of ['amd64', 'arm64'] as const) stub[a] = join((await lockedDeb('systemd-boot-efi', a)).root, STUBS[a].file);
}, 120_000);

const fakeStub: PeInfo = {
  machine: 0x8664,
  imageBase: 0x10000000n,
  sectionAlignment: 0x200,
  fileAlignment: 0x200,
  sizeOfImage: 0x19300,
  sections: [
    { name: '.text', virtualAddress: 0x4000, virtualSize: 0xbff0, rawSize: 0xc000, rawOffset: 0x400 },
    { name: '.sdmagic', virtualAddress: 0x19100, virtualSize: 0x34, rawSize: 0x200, rawOffset: 0x11200 },
  ],
};

describe('placeSections', () => {
  it('puts every section on a 4 KiB boundary after the stub, in ukify order, ImageBase included', () => {
    const placed = placeSections(fakeStub, {
      '.osrel': { file: 'o', size: 10 },
      '.cmdline': { file: 'c', size: 0x1000 },
      '.initrd': { file: 'i', size: 0x1001 },
      '.linux': { file: 'l', size: 5 },
    });
    // The last stub section ends at 0x19100 + max(0x34, 0x200) = 0x19300 -> 0x1a000.
    expect(placed.map((p) => [p.name, p.vma.toString(16)])).toEqual([
      ['.osrel', '1001a000'],
      ['.cmdline', '1001b000'],
      ['.initrd', '1001c000'],
      ['.linux', '1001e000'],
    ]);
    expect(objcopyArgv('objcopy', 's', 'u', placed.slice(0, 1))).toEqual(['objcopy', '--add-section', '.osrel=o', '--change-section-vma', '.osrel=0x1001a000', 's', 'u']);
  });

  it('names what is wrong with a file that is not a PE32+ image', () => {
    expect(parsePe(Buffer.from('hello'))).toBe('no MZ header');
    const mz = Buffer.alloc(0x80);
    mz.write('MZ');
    mz.writeUInt32LE(0x40, 0x3c);
    expect(parsePe(mz)).toBe('no PE signature');
  });

  it('writes the os-release systemd-boot shows', () => {
    expect(osRelease({ version: '0.1.0', arch: 'x86_64' })).toBe('NAME="ClawOS"\nID=clawos\nVERSION_ID="0.1.0"\nPRETTY_NAME="ClawOS 0.1.0 (x86_64)"\n');
  });
});

describe('the real systemd-boot-efi stubs (locked packages)', () => {
  it.each(['amd64', 'arm64'] as const)('%s: reads the headers and recomputes the checksum the stub carries', async (a) => {
    const buf = await readFile(stub[a]!);
    const pe = parsePe(buf);
    if (typeof pe === 'string') throw new Error(pe);
    expect(pe.machine).toBe(STUBS[a].machine);
    const at = buf.readUInt32LE(0x3c) + 4 + 20 + 64;
    if (buf.readUInt32LE(at) !== 0) expect(peChecksum(buf, at)).toBe(buf.readUInt32LE(at));
  });

  it.each(['amd64', 'arm64'] as const)('%s: assembles a UKI whose sections objdump shows where they were placed, the same bytes twice', async (a) => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      for (const [f, text] of [['kernel', 'K'.repeat(5000)], ['initrd', 'I'.repeat(70000)], ['cmdline', 'console=ttyS0 panic=-1'], ['osrel', osRelease({ version: '1', arch: a })]]) {
        await writeFile(join(d, f!), text!);
      }
      const mk = (out: string) =>
        assembleUki(run, { stub: stub[a]!, kernel: join(d, 'kernel'), initrd: join(d, 'initrd'), cmdline: join(d, 'cmdline'), osrel: join(d, 'osrel'), out: join(d, out), objcopy: STUBS[a].objcopy, epoch: 1763683200 });
      const { placed } = await mk('a.efi');
      await new Promise((r) => setTimeout(r, 1100));
      await mk('b.efi');
      const [ua, ub] = [await readFile(join(d, 'a.efi')), await readFile(join(d, 'b.efi'))];
      expect(ua.equals(ub)).toBe(true);
      const h = await run([STUBS[a].dump, '-h', join(d, 'a.efi')], { captureStdout: true });
      for (const p of placed) {
        const m = new RegExp(`\\s${p.name.replace('.', '\\.')}\\s+([0-9a-f]+)\\s+([0-9a-f]+)`).exec(h.stdout);
        expect([p.name, parseInt(m![1]!, 16), BigInt(`0x${m![2]}`)]).toEqual([p.name, p.size, p.vma]);
      }
      const pe = parsePe(ua) as PeInfo;
      const coff = ua.readUInt32LE(0x3c) + 4;
      expect(ua.readUInt32LE(coff + 4)).toBe(1763683200);
      expect(pe.sections.at(-1)!.name).toBe('.linux');
      // Pinning again changes nothing: the checksum is the one the file carries.
      const again = Buffer.from(ua);
      expect(pinTimestamp(again, 1763683200)).toBeNull();
      expect(again.equals(ua)).toBe(true);
    } finally {
      await cleanup();
    }
  }, 60_000);

  it('says which objcopy failed and why', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      for (const f of ['kernel', 'initrd', 'cmdline', 'osrel']) await writeFile(join(d, f), 'x');
      await expect(
        assembleUki(run, { stub: stub.arm64!, kernel: join(d, 'kernel'), initrd: join(d, 'initrd'), cmdline: join(d, 'cmdline'), osrel: join(d, 'osrel'), out: join(d, 'u.efi'), objcopy: 'objcopy', epoch: 0 }),
      ).rejects.toThrow(`objcopy could not assemble the UKI: objcopy: ${stub.arm64}: file format not recognized`);
    } finally {
      await cleanup();
    }
  });
});

describe('ukiBlocklists (GRUB reads the kernel and initramfs out of the UKI in the EFI image)', () => {
  it('names the sectors of .linux and .initrd in the image, and refuses what GRUB could not read right', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      await writeFile(join(d, 'kernel'), 'K'.repeat(5000));
      await writeFile(join(d, 'initrd'), 'I'.repeat(70001));
      await writeFile(join(d, 'cmdline'), 'console=ttyS0');
      await writeFile(join(d, 'osrel'), osRelease({ version: '1', arch: 'amd64' }));
      await assembleUki(run, { stub: stub.amd64!, kernel: join(d, 'kernel'), initrd: join(d, 'initrd'), cmdline: join(d, 'cmdline'), osrel: join(d, 'osrel'), out: join(d, 'u.efi'), objcopy: STUBS.amd64.objcopy, epoch: 1763683200 });
      const uki = await readFile(join(d, 'u.efi'));
      const pe = parsePe(uki) as PeInfo;
      const raw = (n: string) => pe.sections.find((s) => s.name === n)!.rawOffset;
      // The UKI 3 sectors into a disk image: the blocks count from the image's start.
      const image = Buffer.concat([Buffer.alloc(1536, 0xee), uki, Buffer.alloc(4096, 0xee)]);
      expect(ukiBlocklists(image, uki)).toEqual({
        linux: { start: 3 + raw('.linux') / 512, count: Math.ceil(5000 / 512) },
        initrd: { start: 3 + raw('.initrd') / 512, count: Math.ceil(70001 / 512) },
      });
      expect(ukiBlocklists(Buffer.concat([Buffer.alloc(100), uki]), uki)).toBe('the UKI starts at byte 100 of the image, not on a 512-byte sector');
      expect(ukiBlocklists(Buffer.alloc(4096), uki)).toBe('the UKI is not in the image');
      // Stored in two pieces (a fragmented FAT file): the start matches, the rest does not.
      const split = Buffer.concat([uki.subarray(0, 1 << 16), Buffer.alloc(512, 0xee), uki.subarray(1 << 16)]);
      expect(ukiBlocklists(split, uki)).toBe('the UKI is not stored contiguously in the image');
      // Padding that is not zeros would reach the kernel as part of its initramfs.
      const dirty = Buffer.from(uki);
      dirty[raw('.initrd') + 70001] = 0x41;
      expect(ukiBlocklists(dirty, dirty)).toBe("the UKI's .initrd is padded with bytes other than zero");
      expect(ukiBlocklists(Buffer.from('MZ'), Buffer.from('MZ'))).toBe('the UKI is not a PE image: no MZ header');
    } finally {
      await cleanup();
    }
  }, 60_000);
});
