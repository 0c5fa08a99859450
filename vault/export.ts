/**
 * A deterministic tar of a bundle: the same bundle gives the same bytes on any
 * machine. Headers are made with the `tar` package's Header/Pax encoders rather
 * than from stat(), so nothing host-specific gets in: entries sorted by path
 * (UTF-8 bytes), regular files only (no dir entries), mode 0644 or 0755 (exec
 * bit kept), uid/gid 0, empty uname/gname, mtime = SOURCE_DATE_EPOCH, and a pax
 * header (path only, never atime/ctime) just for paths too long for ustar.
 * Next to it, SHA256SUMS in the format `sha256sum -c` reads.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import { Header, Pax } from 'tar';
import { writeFileAtomic } from '../lib/atomic-write.js';
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
  const out = createWriteStream(tmp, { flags: 'w', mode: 0o644 });
  const hash = createHash('sha256');
  let size = 0;
  const write = async (b: Buffer): Promise<void> => {
    hash.update(b);
    size += b.length;
    if (!out.write(b)) await once(out, 'drain');
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
    out.end();
    await once(out, 'finish');
    await rename(tmp, outTar);
  } catch (e) {
    out.destroy();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const sha256 = hash.digest('hex');
  const sumsPath = join(dirname(outTar), 'SHA256SUMS');
  await writeFileAtomic(sumsPath, `${sha256}  ${name}\n`);
  return { tarPath: outTar, sha256, size, sumsPath };
}
