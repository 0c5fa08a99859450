/**
 * Secrets never reach a log, report or attestation: a Redactor knows named secret
 * values (the values of environment variables listed by name, passphrases) and
 * replaces each occurrence with `[REDACTED:<name>]`.
 *
 * What is matched, for each secret:
 * - the raw value;
 * - its base64 form at each of the three byte alignments it can take inside a
 *   longer base64 stream (only the characters that do not depend on the
 *   neighbouring bytes), so `printf %s "$TOKEN" | base64`, or a token inside a
 *   base64'd blob, is caught too; only for secrets of 8 bytes or more, since a
 *   shorter core would match ordinary base64 by chance;
 * - its percent-encoded form, when that differs (a token in a URL);
 * - each line of a multi-line secret (a PEM key), as logs are written line by line.
 * A hex dump or any other encoding is not recognised.
 */
import type { Redaction } from './proc.js';

export interface Secret {
  name: string;
  value: string;
}

/** Base64 substrings that appear whenever `value` is base64-encoded inside a longer stream. */
export function base64Cores(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    // `shift` unknown bytes before the secret; drop the characters they touch.
    const padded = Buffer.concat([Buffer.alloc(shift), bytes]);
    const enc = padded.toString('base64').replace(/=+$/, '');
    const lead = shift === 0 ? 0 : shift === 1 ? 2 : 3;
    // The last character mixes the secret's last bits with whatever follows.
    const total = shift + bytes.length;
    const fullChars = Math.floor((total * 8) / 6);
    const core = enc.slice(lead, fullChars);
    if (core.length >= 8) out.push(core);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Redactor implements Redaction {
  private readonly secrets: Secret[] = [];
  private pattern: RegExp | null = null;
  private names = new Map<string, string>();

  constructor(secrets: Secret[] = []) {
    for (const s of secrets) this.add(s.name, s.value);
  }

  /** Secrets from environment variables named by the config; unset or empty ones are skipped. */
  static fromEnv(names: readonly string[], env: NodeJS.ProcessEnv = process.env): Redactor {
    const r = new Redactor();
    for (const n of names) {
      const v = env[n];
      if (v) r.add(n, v);
    }
    return r;
  }

  /** Add a named secret (an empty value is ignored: it would match everywhere). */
  add(name: string, value: string): this {
    if (!value) return this;
    if (!/^[A-Za-z0-9_.:-]+$/.test(name)) throw new Error(`redact: secret name ${JSON.stringify(name)} must be [A-Za-z0-9_.:-]+`);
    this.secrets.push({ name, value });
    const forms = new Set<string>([value]);
    if (Buffer.byteLength(value) >= 8) for (const c of base64Cores(value)) forms.add(c);
    const pct = encodeURIComponent(value);
    if (pct !== value) forms.add(pct);
    for (const l of value.split(/\r?\n/)) if (l.length >= 8) forms.add(l);
    for (const f of forms) if (!this.names.has(f)) this.names.set(f, name);
    // Longest first, so a value that contains another secret is replaced whole.
    const alts = [...this.names.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.pattern = new RegExp(alts.join('|'), 'g');
    return this;
  }

  /** Names of the secrets known (never their values). */
  get secretNames(): string[] {
    return [...new Set(this.secrets.map((s) => s.name))];
  }

  get empty(): boolean {
    return this.pattern === null;
  }

  /** The text with every known secret form replaced. */
  text(s: string): string {
    if (!this.pattern || !s) return s;
    return s.replace(this.pattern, (m) => `[REDACTED:${this.names.get(m) ?? 'secret'}]`);
  }

  /** A JSON-like value with every string (keys included) redacted: state records, reports. */
  value<T>(v: T): T {
    if (this.empty) return v;
    const walk = (x: unknown): unknown => {
      if (typeof x === 'string') return this.text(x);
      if (Array.isArray(x)) return x.map(walk);
      if (x && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
        return Object.fromEntries(Object.entries(x).map(([k, y]) => [this.text(k), walk(y)]));
      }
      return x;
    };
    return walk(v) as T;
  }

  /** A line writer (a task log) that only ever sees redacted lines. */
  writer(write: (line: string) => void): (line: string) => void {
    return (line) => write(this.text(line));
  }
}
