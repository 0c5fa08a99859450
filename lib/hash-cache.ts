/**
 * sha256 of files, remembered by (size, mtime) like git's index, so a no-op run
 * does not re-read large artifacts. A changed size or mtime re-hashes.
 */
import { readFile, stat } from 'node:fs/promises';
import { writeJsonAtomic } from './atomic-write.js';
import { sha256File } from './hash.js';

interface Entry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

export class HashCache {
  private dirty = false;
  private constructor(
    private readonly path: string | null,
    private readonly entries: Record<string, Entry>,
  ) {}

  static async open(path: string | null): Promise<HashCache> {
    if (!path) return new HashCache(null, {});
    try {
      return new HashCache(path, JSON.parse(await readFile(path, 'utf8')) as Record<string, Entry>);
    } catch {
      return new HashCache(path, {});
    }
  }

  async file(abs: string): Promise<Entry> {
    const st = await stat(abs);
    const e = this.entries[abs];
    if (e && e.size === st.size && e.mtimeMs === st.mtimeMs) return e;
    const fresh = { size: st.size, mtimeMs: st.mtimeMs, sha256: await sha256File(abs) };
    this.entries[abs] = fresh;
    this.dirty = true;
    return fresh;
  }

  async save(): Promise<void> {
    if (this.path && this.dirty) await writeJsonAtomic(this.path, this.entries);
    this.dirty = false;
  }
}
