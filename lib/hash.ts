import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A content hash of a file or a directory tree: names, modes' executable bit,
 * symlink targets and file contents, in sorted order. Mtimes are left out so a
 * fresh checkout hashes the same.
 */
export async function sha256Path(path: string): Promise<string> {
  const st = await lstat(path);
  if (st.isFile()) return sha256File(path);
  const h = createHash('sha256');
  await walk(path, '', h);
  return h.digest('hex');
}

async function walk(root: string, rel: string, h: ReturnType<typeof createHash>): Promise<void> {
  const abs = rel ? join(root, rel) : root;
  const names = (await readdir(abs)).sort();
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, r));
    if (st.isSymbolicLink()) {
      h.update(`L ${r} ${await readlink(join(root, r))}\n`);
    } else if (st.isDirectory()) {
      h.update(`D ${r}\n`);
      await walk(root, r, h);
    } else if (st.isFile()) {
      h.update(`F ${r} ${st.mode & 0o111 ? 'x' : '-'} ${await sha256File(join(root, r))}\n`);
    }
  }
}
