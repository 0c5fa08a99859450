/**
 * A deterministic tar of a bundle: the same bundle gives the same bytes on any
 * machine. Headers are made with the `tar` package's Header/Pax encoders rather
 * than from stat(), so nothing host-specific gets in: entries sorted by path
 * (UTF-8 bytes), regular files only (no dir entries), mode 0644 or 0755 (exec
 * bit kept), uid/gid 0, empty uname/gname, mtime = SOURCE_DATE_EPOCH, and a pax
 * header (path only, never atime/ctime) just for paths too long for ustar.
 * Next to it, SHA256SUMS in the format `sha256sum -c` reads, kept true for the
 * whole folder: the tar's line replaced, other lines kept while their file still
 * hashes as listed, sorted by name.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Header, Pax } from 'tar';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { sha256File } from '../lib/hash.js';
import { listFiles } from './bundle.js';
import { compareUtf8, unsafePathReason } from './paths.js';
import { VaultError } from './codes.js';

export interface ExportResult {
  tarPath: string;
  sha256: string;
  size: number;
  sumsPath: string;
}

function block(h: Header): Buffer {
  const b = Buffer.alloc(512);
  h.encode(b, 0);
  return b;
}

/**
 * Write `outTar` (and `SHA256SUMS` in the same dir) from the bundle directory.
 * `sourceDateEpoch` defaults to $SOURCE_DATE_EPOCH; one of the two is required.
 */
export async function exportBundle(bundleDir: string, outTar: string, opts: { sourceDateEpoch?: number } = {}): Promise<ExportResult> {
  const envEpoch = process.env.SOURCE_DATE_EPOCH;
  const epoch = opts.sourceDateEpoch ?? (envEpoch !== undefined && /^\d+$/.test(envEpoch) ? Number(envEpoch) : undefined);
  if (epoch === undefined) throw new VaultError('INVALID_SCHEMA', 'export needs SOURCE_DATE_EPOCH (or sourceDateEpoch)');
  const name = basename(outTar);
  if (/[\\\n\r]/.test(name)) throw new VaultError('PATH_UNSAFE', `tar name ${JSON.stringify(name)} cannot be listed in SHA256SUMS`);
  const mtime = new Date(epoch * 1000);
  const files = (await listFiles(bundleDir)).sort(compareUtf8);
  const tmp = join(dirname(outTar), `.${name}.${process.pid}.tmp`);
  // Opened (and awaited) here, so a folder that cannot be written is a rejected promise, not a stream's unhandled 'error'.
  const out = await open(tmp, 'w', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  const write = async (b: Buffer): Promise<void> => {
    hash.update(b);
    size += b.length;
    for (let off = 0; off < b.length; ) off += (await out.write(b, off)).bytesWritten;
  };
  try {
    for (const p of files) {
      const why = unsafePathReason(p);
      if (why) throw new VaultError('PATH_UNSAFE', `${p} ${why}`);
      const st = await lstat(join(bundleDir, p));
      const mode = st.mode & 0o111 ? 0o755 : 0o644;
      const h = new Header({ path: p, mode, uid: 0, gid: 0, size: st.size, mtime, type: 'File', uname: '', gname: '' });
      const hb = Buffer.alloc(512);
      const needPax = h.encode(hb, 0);
      if (needPax) {
        // Pax.encode() would add its own header from its fields; only path goes in.
        await write(new Pax({ path: p, mtime, uid: 0, gid: 0 }).encode());
        await write(block(new Header({ path: p.slice(-99), mode, uid: 0, gid: 0, size: st.size, mtime, type: 'File', uname: '', gname: '' })));
      } else {
        await write(hb);
      }
      let n = 0;
      for await (const chunk of createReadStream(join(bundleDir, p), { highWaterMark: 1 << 20 })) {
        n += (chunk as Buffer).length;
        await write(chunk as Buffer);
      }
      if (n !== st.size) throw new VaultError('HASH_MISMATCH', `${p} changed while being exported`);
      const pad = (512 - (n % 512)) % 512;
      if (pad) await write(Buffer.alloc(pad));
    }
    await write(Buffer.alloc(1024));
    await out.sync();
    await out.close();
    await rename(tmp, outTar);
  } catch (e) {
    await out.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const sha256 = hash.digest('hex');
  const sumsPath = join(dirname(outTar), 'SHA256SUMS');
  await writeFileAtomic(sumsPath, await mergedSums(sumsPath, name, sha256));
  return { tarPath: outTar, sha256, size, sumsPath };
}

/** `sha256  name` (or `sha256 *name`, binary mode) as sha256sum writes it. */
const SUMS_LINE = /^([0-9a-f]{64}) [ *](.+)$/;

/** null when the path is gone or not a regular file. */
async function sha256OfFile(path: string): Promise<string | null> {
  try {
    return (await lstat(path)).isFile() ? await sha256File(path) : null;
  } catch {
    return null;
  }
}

/**
 * The folder's SHA256SUMS with `name` set to `sha256`: every other line is kept
 * only while its file is still there with that sha256 (an older export in the
 * same folder stays listed; a line that would fail `sha256sum -c` goes), sorted
 * by name so the same folder always gives the same file.
 */
export async function mergedSums(sumsPath: string, name: string, sha256: string): Promise<string> {
  let old = '';
  try {
    old = await readFile(sumsPath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const entries = new Map<string, string>();
  for (const line of old.split('\n')) {
    const m = SUMS_LINE.exec(line);
    if (!m || m[2] === name || unsafePathReason(m[2]!)) continue;
    if ((await sha256OfFile(join(dirname(sumsPath), m[2]!))) === m[1]) entries.set(m[2]!, m[1]!);
  }
  entries.set(name, sha256);
  return [...entries.keys()].sort(compareUtf8).map((n) => `${entries.get(n)}  ${n}\n`).join('');
}
