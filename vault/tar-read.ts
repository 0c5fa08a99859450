/**
 * Unpack a bundle tar into an empty temp dir without trusting it: every entry is
 * checked before anything is written, and only plain files and directories at
 * safe relative paths are written (O_EXCL, so nothing is overwritten or followed).
 * Refused (PATH_UNSAFE): absolute paths, "..", symlinks, hardlinks, devices,
 * FIFOs, and duplicate (also case-fold duplicate) entries.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { fail, type Fail } from './codes.js';
import { foldKey, unsafePathReason } from './paths.js';

export async function extractTarSafely(tarPath: string, dest: string): Promise<Fail | undefined> {
  let failure: Fail | undefined;
  const seen = new Map<string, string>();
  const writes: Promise<void>[] = [];
  const refuse = (f: Fail): void => {
    failure ??= f;
  };
  const onEntry = (entry: ReadEntry): void => {
    if (failure) {
      entry.resume();
      return;
    }
    const raw = entry.path;
    const isDir = entry.type === 'Directory';
    // GNU `tar -C dir .` writes "./x" and a "./" entry: the same names, spelled relative to ".".
    const rel = raw.replace(/^(\.\/)+/, '');
    const p = isDir ? rel.replace(/\/+$/, '') : rel;
    if (isDir && (p === '' || p === '.')) {
      entry.resume();
      return;
    }
    if (entry.type !== 'File' && entry.type !== 'OldFile' && !isDir) {
      const what = entry.type === 'SymbolicLink' ? 'a symlink' : entry.type === 'Link' ? 'a hardlink' : `a ${entry.type} entry`;
      refuse(fail('PATH_UNSAFE', `tar entry ${JSON.stringify(raw)} is ${what}`));
      entry.resume();
      return;
    }
    const why = unsafePathReason(p);
    if (why) {
      refuse(fail('PATH_UNSAFE', `tar entry ${JSON.stringify(raw)} ${why}`));
      entry.resume();
      return;
    }
    const k = foldKey(p);
    const other = seen.get(k);
    if (other !== undefined) {
      refuse(fail('PATH_UNSAFE', other === p ? `tar entry ${JSON.stringify(p)} appears twice` : `tar entries ${JSON.stringify(other)} and ${JSON.stringify(p)} differ only in case`));
      entry.resume();
      return;
    }
    seen.set(k, p);
    if (isDir) {
      writes.push(mkdir(join(dest, p), { recursive: true }).then(() => undefined));
      entry.resume();
      return;
    }
    const target = join(dest, p);
    entry.pause();
    writes.push(
      (async () => {
        try {
          await mkdir(dirname(target), { recursive: true });
          const out = createWriteStream(target, { flags: 'wx', mode: 0o644 });
          entry.pipe(out);
          entry.resume();
          await finished(out);
        } catch (e) {
          refuse(fail('PATH_UNSAFE', `tar entry ${JSON.stringify(p)} cannot be unpacked: ${(e as Error).message}`));
          entry.resume();
        }
      })(),
    );
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const parser = new Parser({ strict: true, onReadEntry: onEntry });
      parser.on('error', reject);
      parser.on('end', () => resolve());
      const s = createReadStream(tarPath);
      s.on('error', reject);
      s.pipe(parser);
    });
    await Promise.all(writes);
  } catch (e) {
    await Promise.allSettled(writes);
    return failure ?? fail('INVALID_SCHEMA', `not a readable tar: ${(e as Error).message}`);
  }
  return failure;
}
