/**
 * Which relative paths a bundle may contain. A path is refused when it could
 * escape the bundle or mean different files on different systems: absolute,
 * "..", ".", empty segments, backslash, NUL or other control characters, or
 * equal to another path after Unicode NFC + lower-casing (case-insensitive
 * filesystems would merge them).
 */
export function unsafePathReason(p: string): string | undefined {
  if (p.length === 0) return 'empty path';
  if (p.includes('\0')) return 'contains NUL';
  if (p.includes('\\')) return 'contains a backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'contains a control character';
  if (p.startsWith('/')) return 'is absolute';
  if (/^[A-Za-z]:/.test(p)) return 'starts with a drive letter';
  for (const seg of p.split('/')) {
    if (seg === '..') return 'contains ".."';
    if (seg === '.') return 'contains "."';
    if (seg === '') return 'contains an empty segment';
  }
  return undefined;
}

export function foldKey(p: string): string {
  return p.normalize('NFC').toLowerCase();
}

/** The first pair of paths that fold to the same key, if any. */
export function caseFoldDuplicate(paths: Iterable<string>): [string, string] | undefined {
  const seen = new Map<string, string>();
  for (const p of paths) {
    const k = foldKey(p);
    const other = seen.get(k);
    if (other !== undefined) return [other, p];
    seen.set(k, p);
  }
  return undefined;
}

/** Byte order of the UTF-8 encoding: the sort order of manifest files. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
