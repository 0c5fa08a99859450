/**
 * The results area of a ClawOS stick (issue 15): the last 4 MiB of the disk,
 * outside every partition the ISO describes, so the ISO's bytes stay the
 * vouched-for ones and a stick made with plain dd can get one afterwards.
 * `flash` writes the header; the guest (rootfs-overlay/usr/lib/clawos/results.sh)
 * finds it by its magic and writes its results after it; `hw record` reads them.
 *
 *   byte 0    header, one 512-byte sector, NUL padded:
 *             "CLAWOS-RESULTS-AREA v1\niso_sha256=<hex>\niso_bytes=<n>\narea_bytes=<n>\n"
 *   byte 512  empty (NUL) until the guest writes
 *             "CLAWOS-RESULTS v1 bytes=<N> sha256=<hex of the N bytes>\n" + N bytes
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { UserError } from '../lib/errors.js';

export const AREA_BYTES = 4 * 1024 * 1024;
export const SECTOR = 512;
export const AREA_MAGIC = 'CLAWOS-RESULTS-AREA v1';
const RESULTS_LINE = /^CLAWOS-RESULTS v1 bytes=(\d+) sha256=([0-9a-f]{64})$/;
const HEX64 = /^[0-9a-f]{64}$/;

export interface AreaHeader {
  iso_sha256: string;
  iso_bytes: number;
  area_bytes: number;
}

export type AreaProblem = 'no-area' | 'no-results' | 'truncated';

export type AreaRead =
  | { ok: true; header: AreaHeader; results: Buffer; results_sha256: string }
  | { ok: false; reason: AreaProblem; header: AreaHeader | null; message: string };

/** Where the area starts on a disk of `diskBytes` (the last whole 4 MiB, sector aligned). */
export function areaOffset(diskBytes: number): number {
  return Math.floor(diskBytes / SECTOR) * SECTOR - AREA_BYTES;
}

/** The header sector plus an empty results sector: what `flash` writes. */
export function areaHeaderBytes(h: AreaHeader): Buffer {
  const b = Buffer.alloc(2 * SECTOR);
  b.write(`${AREA_MAGIC}\niso_sha256=${h.iso_sha256}\niso_bytes=${h.iso_bytes}\narea_bytes=${h.area_bytes}\n`, 'ascii');
  return b;
}

export function parseAreaHeader(sector: Buffer): AreaHeader | null {
  const text = sector.subarray(0, SECTOR).toString('latin1').split('\0')[0]!;
  const lines = text.split('\n');
  if (lines[0] !== AREA_MAGIC) return null;
  const kv = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
  const sha = kv.get('iso_sha256') ?? '';
  const isoBytes = Number(kv.get('iso_bytes'));
  const areaBytes = Number(kv.get('area_bytes'));
  if (!HEX64.test(sha) || !Number.isSafeInteger(isoBytes) || areaBytes !== AREA_BYTES) return null;
  return { iso_sha256: sha, iso_bytes: isoBytes, area_bytes: areaBytes };
}

/** Read an area (its whole 4 MiB): the header, and the results if the guest wrote them whole. */
export function parseArea(area: Buffer, where: string): AreaRead {
  const header = parseAreaHeader(area);
  if (!header) return { ok: false, reason: 'no-area', header: null, message: `${where} has no ClawOS results area (its last 4 MiB do not start with "${AREA_MAGIC}"): flash the ISO with \`clawos-build flash\`, or add one with \`clawos-build hw prepare\`` };
  const rest = area.subarray(SECTOR);
  if (rest[0] === 0) return { ok: false, reason: 'no-results', header, message: `${where}: the results area is empty: no ClawOS boot wrote to it (boot the machine from this stick first)` };
  const nl = rest.indexOf(0x0a);
  const first = nl > 0 ? rest.subarray(0, nl).toString('latin1') : '';
  const m = RESULTS_LINE.exec(first);
  if (!m) return { ok: false, reason: 'truncated', header, message: `${where}: the results area does not start with a "CLAWOS-RESULTS v1 bytes=N sha256=HEX" line: the write was cut off or the area was overwritten` };
  const want = Number(m[1]);
  const body = rest.subarray(nl + 1, nl + 1 + want);
  const sha = createHash('sha256').update(body).digest('hex');
  if (body.length < want || sha !== m[2]) {
    return { ok: false, reason: 'truncated', header, message: `${where}: the results are truncated or damaged: ${body.length} of ${want} bytes, sha256 ${sha}, the guest wrote ${m[2]}` };
  }
  return { ok: true, header, results: Buffer.from(body), results_sha256: sha };
}

/** The size of a disk image or block device, read through the open file (lseek to the end works for both). */
async function sizeOf(fh: FileHandle, isBlock: boolean): Promise<number> {
  if (!isBlock) return (await fh.stat()).size;
  // fstat gives 0 for a block device: find the end by reading one byte at doubling then bisected offsets.
  const one = Buffer.alloc(1);
  let lo = 0;
  let hi = SECTOR;
  while ((await fh.read(one, 0, 1, hi - 1)).bytesRead === 1) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await fh.read(one, 0, 1, mid - 1)).bytesRead === 1) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Read the area of a disk image or block device. */
export async function readResultsArea(path: string): Promise<AreaRead & { disk_bytes: number }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    const diskBytes = await sizeOf(fh, st.isBlockDevice());
    if (diskBytes < AREA_BYTES + SECTOR) {
      return { ok: false, reason: 'no-area', header: null, message: `${path} is ${diskBytes} bytes: too small to hold a ClawOS results area`, disk_bytes: diskBytes };
    }
    const area = Buffer.alloc(AREA_BYTES);
    const { bytesRead } = await fh.read(area, 0, AREA_BYTES, areaOffset(diskBytes));
    return { ...parseArea(area.subarray(0, bytesRead), path), disk_bytes: diskBytes };
  } finally {
    await fh.close();
  }
}

/**
 * Write an empty area for the ISO: a regular file (an image) is first extended
 * to the ISO rounded up to 1 MiB plus the area; a block device must be large
 * enough already. Returns where it went.
 */
export async function writeResultsArea(path: string, h: Omit<AreaHeader, 'area_bytes'>): Promise<{ offset: number; disk_bytes: number }> {
  const fh = await open(path, 'r+');
  try {
    const st = await fh.stat();
    const block = st.isBlockDevice();
    let diskBytes = await sizeOf(fh, block);
    const need = Math.ceil(h.iso_bytes / (1024 * 1024)) * 1024 * 1024 + AREA_BYTES;
    if (!block && diskBytes < need) {
      await fh.truncate(need);
      diskBytes = need;
    }
    if (diskBytes < h.iso_bytes + AREA_BYTES) {
      throw new UserError(`${path} is ${diskBytes} bytes: it cannot hold the ${h.iso_bytes}-byte ISO and a ${AREA_BYTES}-byte results area after it`);
    }
    const offset = areaOffset(diskBytes);
    const bytes = areaHeaderBytes({ ...h, area_bytes: AREA_BYTES });
    await fh.write(bytes, 0, bytes.length, offset);
    await fh.sync();
    const back = Buffer.alloc(bytes.length);
    await fh.read(back, 0, back.length, offset);
    if (!back.equals(bytes)) throw new UserError(`the results area header written to ${path} at byte ${offset} did not read back`);
    return { offset, disk_bytes: diskBytes };
  } finally {
    await fh.close();
  }
}
