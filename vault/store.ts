/**
 * The content-addressed store, <build>/vault/store/sha256/<hex>: every task
 * output and report is kept once under its sha256. Objects are read-only (0444)
 * and never rewritten; outputs and bundle files are hard links to them, so a
 * restore costs no copy (a plain copy is the fallback across filesystems).
 * Because links share the inode, a restored file must be replaced (unlink +
 * create), never written in place.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, constants as fsc } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { sha256Hex } from '../lib/hash.js';

const HEX64 = /^[0-9a-f]{64}$/;

export function storeDir(buildDir: string): string {
  return join(buildDir, 'vault', 'store', 'sha256');
}

export function storePath(buildDir: string, sha256: string): string {
  if (!HEX64.test(sha256)) throw new Error(`storePath: not a sha256 hex digest: ${sha256}`);
  return join(storeDir(buildDir), sha256);
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Put a file into the store (one read, one copy, hashed while copying); returns its sha256 hex. */
export async function storePut(buildDir: string, file: string): Promise<string> {
  const dir = storeDir(buildDir);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.in-${process.pid}-${randomBytes(6).toString('hex')}`);
  const h = createHash('sha256');
  try {
    await pipeline(
      createReadStream(file, { highWaterMark: 1 << 20 }),
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          h.update(chunk);
          cb(null, chunk);
        },
      }),
      createWriteStream(tmp, { mode: 0o444, flags: 'wx' }),
    );
    const sha = h.digest('hex');
    const dest = join(dir, sha);
    if (await exists(dest)) {
      await unlink(tmp);
    } else {
      await chmod(tmp, 0o444);
      await rename(tmp, dest);
    }
    return sha;
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Put bytes (a report made in memory) into the store. */
export async function storePutBytes(buildDir: string, bytes: Uint8Array): Promise<string> {
  const sha = sha256Hex(bytes);
  const dest = storePath(buildDir, sha);
  if (!(await exists(dest))) await writeFileAtomic(dest, bytes, 0o444);
  return sha;
}

export async function storeHas(buildDir: string, sha256: string): Promise<boolean> {
  return exists(storePath(buildDir, sha256));
}

/**
 * Make `dest` the stored object `sha256`: a hard link when possible (no copy),
 * else one plain copy (COPYFILE_EXCL, no reflink). Replaces dest atomically.
 * Returns how it was done ('present' when dest already is that object).
 */
export async function restore(buildDir: string, sha256: string, dest: string): Promise<'link' | 'copy' | 'present'> {
  const src = storePath(buildDir, sha256);
  const s = await stat(src);
  try {
    const d = await lstat(dest);
    if (d.ino === s.ino && d.dev === s.dev) return 'present';
  } catch {
    /* dest absent */
  }
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.restore-${process.pid}-${randomBytes(6).toString('hex')}`);
  let how: 'link' | 'copy' = 'link';
  try {
    await link(src, tmp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw e;
    await copyFile(src, tmp, fsc.COPYFILE_EXCL);
    how = 'copy';
  }
  await rename(tmp, dest);
  return how;
}

/**
 * Give `file` its own inode again if it shares one (a restored output is a hard
 * link to a read-only store object): a step that then writes the file in place
 * cannot reach the store. Returns true when a link was broken.
 */
export async function detach(file: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(file);
  } catch {
    return false;
  }
  if (!st.isFile() || st.nlink < 2) return false;
  const tmp = join(dirname(file), `.detach-${process.pid}-${randomBytes(6).toString('hex')}`);
  await copyFile(file, tmp, fsc.COPYFILE_EXCL);
  await chmod(tmp, 0o644);
  await rename(tmp, file);
  return true;
}
