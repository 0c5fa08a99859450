/**
 * A deterministic "newc" (SVR4, no CRC) cpio writer, the format the kernel
 * unpacks as an initramfs. Written here rather than run through cpio(1) so the
 * bytes depend only on the entries: sorted paths, one mtime, uid/gid 0, inode
 * numbers in order.
 */
import { gzipSync, constants as zc } from 'node:zlib';

export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; data: Uint8Array }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char' | 'block'; path: string; mode: number; major: number; minor: number };

const S_IFMT = {
  dir: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
} as const;

/** "dev/console": no leading slash, no "." or ".." parts, no trailing slash. */
function checkPath(p: string): void {
  if (p === '' || p.startsWith('/') || p.endsWith('/') || p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`cpio: bad entry path '${p}' (want a relative path like 'dev/console')`);
  }
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function record(
  parts: Buffer[],
  f: { ino: number; mode: number; nlink: number; mtime: number; rdevmajor: number; rdevminor: number },
  name: string,
  data: Uint8Array,
): void {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const header =
    '070701' +
    [f.ino, f.mode, 0, 0, f.nlink, f.mtime, data.length, 0, 0, f.rdevmajor, f.rdevminor, nameBytes.length, 0]
      .map(hex8)
      .join('');
  parts.push(Buffer.from(header, 'ascii'), nameBytes, Buffer.alloc(pad4(header.length + nameBytes.length)));
  if (data.length) parts.push(Buffer.from(data), Buffer.alloc(pad4(data.length)));
}

/**
 * The uncompressed archive. Every parent directory must itself be an entry:
 * the kernel's unpacker does not create missing parents.
 */
export function cpioNewc(entries: CpioEntry[], mtime: number): Buffer {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  let ino = 0;
  for (const e of sorted) {
    checkPath(e.path);
    if (seen.has(e.path)) throw new Error(`cpio: duplicate entry '${e.path}'`);
    seen.add(e.path);
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    if (parent && !dirs.has(parent)) throw new Error(`cpio: '${e.path}' has no parent directory entry '${parent}'`);
    ino += 1;
    const base = { ino, mtime, rdevmajor: 0, rdevminor: 0 };
    switch (e.type) {
      case 'dir':
        dirs.add(e.path);
        record(parts, { ...base, mode: S_IFMT.dir | (e.mode & 0o7777), nlink: 2 }, e.path, new Uint8Array());
        break;
      case 'file':
        record(parts, { ...base, mode: S_IFMT.file | (e.mode & 0o7777), nlink: 1 }, e.path, e.data);
        break;
      case 'symlink':
        record(parts, { ...base, mode: S_IFMT.symlink | 0o777, nlink: 1 }, e.path, Buffer.from(e.target, 'utf8'));
        break;
      case 'char':
      case 'block':
        record(
          parts,
          { ...base, mode: S_IFMT[e.type] | (e.mode & 0o7777), nlink: 1, rdevmajor: e.major, rdevminor: e.minor },
          e.path,
          new Uint8Array(),
        );
        break;
    }
  }
  record(parts, { ino: 0, mode: 0, nlink: 1, mtime: 0, rdevmajor: 0, rdevminor: 0 }, 'TRAILER!!!', new Uint8Array());
  return Buffer.concat(parts);
}

/** gzip without a file name or mtime in the header: the same bytes as `gzip -n` would carry in its header. */
export function gzipDeterministic(data: Uint8Array): Buffer {
  // node's gzip header has MTIME 0, no FNAME and OS = 3 (Unix).
  return gzipSync(data, { level: zc.Z_BEST_COMPRESSION });
}

/** cpioNewc + gzip: what the kernel takes as an initramfs. */
export function initramfs(entries: CpioEntry[], mtime: number): Buffer {
  return gzipDeterministic(cpioNewc(entries, mtime));
}
