/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), written here rather than pulled in:
 * it is ~40 lines, and the vault must control exactly which inputs it refuses.
 * - strings: ECMAScript JSON.stringify escaping (what RFC 8785 §3.2.2.2 prescribes);
 *   lone surrogates are refused (I-JSON, RFC 7493).
 * - numbers: ECMAScript Number-to-String (RFC 8785 §3.2.2.3); NaN/Infinity refused.
 * - object keys sorted by UTF-16 code units (RFC 8785 §3.2.3), no whitespace.
 */

export class JcsError extends Error {
  override readonly name = 'JcsError';
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new JcsError('JCS: lone surrogate in string');
  return JSON.stringify(s);
}

/** Code-unit order, which is what `<` on JS strings already is. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function canonicalize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new JcsError(`JCS: ${value} is not a JSON number`);
      // Number#toString is the ECMAScript algorithm RFC 8785 adopts; -0 becomes "0".
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      return str(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalize(v === undefined ? null : v)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') return canonicalize((obj as { toJSON: () => unknown }).toJSON());
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort(byCodeUnits);
      return `{${keys.map((k) => `${str(k)}:${canonicalize(obj[k])}`).join(',')}}`;
    }
    default:
      throw new JcsError(`JCS: cannot serialize a ${typeof value}`);
  }
}

/** JCS as UTF-8 bytes: what gets hashed and signed. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parse bytes as strict UTF-8 JSON; undefined when they are not JSON at all. */
export function parseJsonBytes(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; error: string } {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, error: 'not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/**
 * True when `bytes` are exactly the JCS form of the JSON they contain. Comparing
 * bytes (not values) also catches duplicate keys, a BOM, whitespace, key order,
 * number spellings ("1.0", "1E2") and escape spellings ("\u0041").
 */
export function isCanonical(bytes: Uint8Array): boolean {
  const p = parseJsonBytes(bytes);
  if (!p.ok) return false;
  let c: Buffer;
  try {
    c = canonicalBytes(p.value);
  } catch {
    return false;
  }
  return Buffer.compare(c, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) === 0;
}
