/**
 * A Unified Kernel Image (UKI): systemd-boot-efi's EFI stub with the kernel,
 * initramfs, command line and os-release added as PE sections, so the firmware
 * loads (and Secure Boot verifies) one file. Debian 12 has no ukify: the sections
 * are added with objcopy the way ukify 252 does it (make_uki): each new section
 * starts at the first 4 KiB boundary after the previous one, the first after the
 * end of the stub's last section (ImageBase + VirtualAddress + VirtualSize), and
 * .linux comes last. objcopy takes absolute VMAs, so ImageBase is added.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Runner } from '../../lib/proc.js';

export interface PeSection {
  name: string;
  virtualAddress: number;
  virtualSize: number;
  rawSize: number;
  rawOffset: number;
}

export interface PeInfo {
  /** COFF Machine field (0x8664 x86_64, 0xaa64 arm64). */
  machine: number;
  imageBase: bigint;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  sections: PeSection[];
}

/** Why a file is not a PE32+ image, or its headers. */
export function parsePe(buf: Buffer): PeInfo | string {
  if (buf.length < 0x40 || buf.readUInt16LE(0) !== 0x5a4d) return 'no MZ header';
  const pe = buf.readUInt32LE(0x3c);
  if (pe + 24 > buf.length || buf.readUInt32LE(pe) !== 0x00004550) return 'no PE signature';
  const coff = pe + 4;
  const machine = buf.readUInt16LE(coff);
  const nSections = buf.readUInt16LE(coff + 2);
  const optSize = buf.readUInt16LE(coff + 16);
  const opt = coff + 20;
  if (opt + optSize > buf.length) return 'truncated optional header';
  const magic = buf.readUInt16LE(opt);
  if (magic !== 0x20b) return `not PE32+ (optional header magic 0x${magic.toString(16)})`;
  const sections: PeSection[] = [];
  let s = opt + optSize;
  for (let i = 0; i < nSections; i++, s += 40) {
    if (s + 40 > buf.length) return 'truncated section table';
    sections.push({
      name: buf.subarray(s, s + 8).toString('latin1').replace(/\0+$/, ''),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      rawSize: buf.readUInt32LE(s + 16),
      rawOffset: buf.readUInt32LE(s + 20),
    });
  }
  return {
    machine,
    imageBase: buf.readBigUInt64LE(opt + 24),
    sectionAlignment: buf.readUInt32LE(opt + 32),
    fileAlignment: buf.readUInt32LE(opt + 36),
    sizeOfImage: buf.readUInt32LE(opt + 56),
    sections,
  };
}

/** The UKI sections in the order ukify 252 adds them (.linux last). */
export const UKI_SECTION_ORDER = ['.osrel', '.cmdline', '.initrd', '.linux'] as const;
export type UkiSectionName = (typeof UKI_SECTION_ORDER)[number];

export interface PlacedSection {
  name: UkiSectionName;
  file: string;
  size: number;
  /** Absolute VMA for objcopy (ImageBase included). */
  vma: bigint;
}

const PAGE = 4096n;
const roundUp = (x: bigint, to: bigint): bigint => ((x + to - 1n) / to) * to;

/** Where each section goes: after the stub's last section, every one on a 4 KiB boundary, in UKI_SECTION_ORDER. */
export function placeSections(stub: PeInfo, files: Record<UkiSectionName, { file: string; size: number }>): PlacedSection[] {
  const last = stub.sections.reduce<PeSection | undefined>((a, b) => (!a || b.virtualAddress > a.virtualAddress ? b : a), undefined);
  let next = stub.imageBase + BigInt(last ? last.virtualAddress + Math.max(last.virtualSize, last.rawSize) : stub.sizeOfImage);
  const out: PlacedSection[] = [];
  for (const name of UKI_SECTION_ORDER) {
    const f = files[name];
    const vma = roundUp(next, PAGE);
    out.push({ name, file: f.file, size: f.size, vma });
    next = vma + BigInt(f.size);
  }
  return out;
}

/** The objcopy argv that writes `out` from `stub` with the placed sections. */
export function objcopyArgv(objcopy: string, stub: string, out: string, placed: readonly PlacedSection[]): string[] {
  const argv = [objcopy];
  for (const p of placed) {
    argv.push('--add-section', `${p.name}=${p.file}`, '--change-section-vma', `${p.name}=0x${p.vma.toString(16)}`);
  }
  argv.push(stub, out);
  return argv;
}

/** os-release of the UKI's .osrel: what systemd-boot and bootctl show. */
export function osRelease(o: { version: string; arch: string }): string {
  return [
    'NAME="ClawOS"',
    'ID=clawos',
    `VERSION_ID="${o.version}"`,
    `PRETTY_NAME="ClawOS ${o.version} (${o.arch})"`,
    '',
  ].join('\n');
}

export interface UkiInputs {
  /** systemd-boot-efi's linux*.efi.stub. */
  stub: string;
  kernel: string;
  initrd: string;
  /** Files holding the command line and os-release text. */
  cmdline: string;
  osrel: string;
  out: string;
  /** objcopy that knows the stub's PE format (the host's, or the cross one). */
  objcopy: string;
  /** SOURCE_DATE_EPOCH: the COFF TimeDateStamp objcopy 2.40 sets to "now". */
  epoch: number;
  env?: Record<string, string>;
}

/** The standard PE image checksum (as imagehlp's CheckSumMappedFile): 16-bit one's-complement-style sum, the field itself skipped, plus the length. */
export function peChecksum(buf: Buffer, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) {
    if (i === checksumOffset || i === checksumOffset + 2) continue;
    sum += buf.readUInt16LE(i);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (buf.length % 2) {
    sum += buf[buf.length - 1]!;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + buf.length) >>> 0;
}

/**
 * objcopy 2.40 stamps a PE it writes with the current time (it ignores
 * SOURCE_DATE_EPOCH), so two builds differ: set the stamp to `epoch` and
 * recompute the header checksum. Returns why not, or null.
 */
export function pinTimestamp(img: Buffer, epoch: number): string | null {
  const pe = parsePe(img);
  if (typeof pe === 'string') return pe;
  const coff = img.readUInt32LE(0x3c) + 4;
  img.writeUInt32LE(epoch >>> 0, coff + 4);
  const checksumAt = coff + 20 + 64;
  img.writeUInt32LE(peChecksum(img, checksumAt), checksumAt);
  return null;
}

/** Assemble the UKI; a thrown Error names what failed (the caller maps it to an outcome). */
export async function assembleUki(run: Runner, i: UkiInputs): Promise<{ placed: PlacedSection[]; argv: string[] }> {
  const pe = parsePe(await readFile(i.stub));
  if (typeof pe === 'string') throw new Error(`${i.stub} is not an EFI stub: ${pe}`);
  const sizes = async (file: string) => ({ file, size: (await readFile(file)).length });
  const placed = placeSections(pe, {
    '.osrel': await sizes(i.osrel),
    '.cmdline': await sizes(i.cmdline),
    '.initrd': await sizes(i.initrd),
    '.linux': await sizes(i.kernel),
  });
  const argv = objcopyArgv(i.objcopy, i.stub, i.out, placed);
  const r = await run(argv, { env: i.env, tailLines: 20 });
  // objcopy follows a fatal error with a "never used" warning per option it did not get to: those hide the cause.
  if (!r.ok) throw new Error(`objcopy could not assemble the UKI: ${r.spawnError ?? r.tail.filter((l) => !/ never used$/.test(l)).slice(-3).join(' / ')}`);
  const img = await readFile(i.out);
  const why = pinTimestamp(img, i.epoch);
  if (why) throw new Error(`objcopy wrote no PE32+ image to ${i.out}: ${why}`);
  await writeFile(i.out, img);
  return { placed, argv };
}

/** A run of 512-byte sectors, as GRUB's blocklist notation (START+COUNT) names it. */
export interface Blocklist {
  start: number;
  count: number;
}

/**
 * Where a UKI's kernel and initramfs lie inside a disk image holding the UKI as
 * one contiguous file (the EFI FAT image), in 512-byte sectors: what GRUB i386-pc
 * loads with `linux (esp)START+COUNT`, so the legacy BIOS path boots the very
 * bytes the signed UKI carries and the ISO holds them once. Each section must
 * start on a sector and be padded with zeros to its end (objcopy pads raw data
 * to the stub's FileAlignment, 512): GRUB reads whole sectors, and the kernel
 * ignores zeros after its image and between initramfs archives. Why not, or the blocks.
 */
export function ukiBlocklists(image: Buffer, uki: Buffer): { linux: Blocklist; initrd: Blocklist } | string {
  const pe = parsePe(uki);
  if (typeof pe === 'string') return `the UKI is not a PE image: ${pe}`;
  const at = image.indexOf(uki.subarray(0, Math.min(uki.length, 1 << 16)));
  if (at < 0) return 'the UKI is not in the image';
  if (at % 512 !== 0) return `the UKI starts at byte ${at} of the image, not on a 512-byte sector`;
  if (!image.subarray(at, at + uki.length).equals(uki)) return 'the UKI is not stored contiguously in the image';
  const block = (name: string): Blocklist | string => {
    const s = pe.sections.find((x) => x.name === name);
    if (!s) return `the UKI has no ${name} section`;
    if (s.rawOffset % 512 !== 0) return `the UKI's ${name} starts at byte ${s.rawOffset}, not on a 512-byte sector (FileAlignment ${pe.fileAlignment})`;
    const count = Math.ceil(s.virtualSize / 512);
    const end = s.rawOffset + count * 512;
    if (end > s.rawOffset + s.rawSize || end > uki.length) return `the UKI's ${name} is not padded to whole sectors (raw size ${s.rawSize}, size ${s.virtualSize})`;
    if (uki.subarray(s.rawOffset + s.virtualSize, end).some((b) => b !== 0)) return `the UKI's ${name} is padded with bytes other than zero`;
    return { start: (at + s.rawOffset) / 512, count };
  };
  const linux = block('.linux');
  if (typeof linux === 'string') return linux;
  const initrd = block('.initrd');
  if (typeof initrd === 'string') return initrd;
  return { linux, initrd };
}
