/**
 * Read a gzip'd newc cpio (Buildroot's images/rootfs.cpio.gz) back into
 * entries, so the Buildroot backend writes the same rootfs-manifest.txt as the
 * busybox backend (pipeline/steps/rootfs.ts manifest()).
 */
import { gunzipSync } from 'node:zlib';
import type { CpioEntry } from '../../lib/cpio.js';

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const S_IFMT = 0o170000;

export function readNewcGz(gz: Uint8Array): CpioEntry[] {
  const buf = gunzipSync(gz);
  const out: CpioEntry[] = [];
  let off = 0;
  for (;;) {
    if (off + 110 > buf.length) throw new Error(`cpio: truncated header at byte ${off}`);
    const magic = buf.toString('latin1', off, off + 6);
    if (magic !== '070701' && magic !== '070702') throw new Error(`cpio: bad magic '${magic}' at byte ${off} (want newc 070701)`);
    const field = (i: number) => parseInt(buf.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const rdevmajor = field(9);
    const rdevminor = field(10);
    const namesize = field(11);
    const nameStart = off + 110;
    const name = buf.toString('utf8', nameStart, nameStart + namesize - 1);
    const dataStart = nameStart + namesize + pad4(110 + namesize);
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + size + pad4(size);
    if (name === 'TRAILER!!!') break;
    const path = name.replace(/^\.\//, '').replace(/^\/+/, '');
    if (path === '' || path === '.') continue;
    const perm = mode & 0o7777;
    switch (mode & S_IFMT) {
      case 0o040000:
        out.push({ type: 'dir', path, mode: perm });
        break;
      case 0o100000:
        out.push({ type: 'file', path, mode: perm, data: Buffer.from(data) });
        break;
      case 0o120000:
        out.push({ type: 'symlink', path, target: data.toString('utf8') });
        break;
      case 0o020000:
      case 0o060000:
        out.push({ type: (mode & S_IFMT) === 0o020000 ? 'char' : 'block', path, mode: perm, major: rdevmajor, minor: rdevminor });
        break;
      default:
        // FIFOs and sockets have no place in an initramfs manifest.
        break;
    }
  }
  return out;
}
