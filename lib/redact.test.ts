import { describe, expect, it } from 'vitest';
import { base64Cores, Redactor } from './redact.js';

describe('Redactor', () => {
  const token = 'ghp_0123456789abcdefXYZ';

  it('replaces every raw occurrence with the secret name', () => {
    const r = new Redactor([{ name: 'GH_TOKEN', value: token }]);
    expect(r.text(`a ${token} b ${token}`)).toBe('a [REDACTED:GH_TOKEN] b [REDACTED:GH_TOKEN]');
    expect(r.text('nothing here')).toBe('nothing here');
  });

  it('finds the base64 form at every alignment inside a longer base64 stream', () => {
    const r = new Redactor([{ name: 'GH_TOKEN', value: token }]);
    for (const prefix of ['', 'a', 'ab', 'abc', 'Authorization: ']) {
      const enc = Buffer.from(`${prefix}${token} and more`).toString('base64');
      const out = r.text(enc);
      expect(out, prefix).toContain('[REDACTED:GH_TOKEN]');
      // What is left of the encoding no longer decodes to the token.
      expect(Buffer.from(out.replace(/\[REDACTED:GH_TOKEN\]/g, ''), 'base64').toString('latin1')).not.toContain(token);
    }
  });

  it('computes base64 cores that depend only on the secret', () => {
    const cores = base64Cores('0123456789');
    expect(cores).toHaveLength(3);
    // Each alignment's core appears in the encoding of the secret at that alignment, whatever surrounds it.
    expect(Buffer.from('0123456789zz').toString('base64')).toContain(cores[0]);
    expect(Buffer.from('Q0123456789zz').toString('base64')).toContain(cores[1]);
    expect(Buffer.from('QQ0123456789zz').toString('base64')).toContain(cores[2]);
    expect(Buffer.concat([Buffer.from([0xff]), Buffer.from('0123456789'), Buffer.from([0])]).toString('base64')).toContain(cores[1]);
    expect(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('0123456789'), Buffer.from([0xff])]).toString('base64')).toContain(cores[2]);
  });

  it('does not add base64 forms for short secrets (they would match ordinary base64)', () => {
    const r = new Redactor([{ name: 'PIN', value: 'abc12' }]);
    expect(r.text('abc12')).toBe('[REDACTED:PIN]');
    expect(r.text(Buffer.from('abc12').toString('base64'))).toBe(Buffer.from('abc12').toString('base64'));
  });

  it('percent-encoded forms and each line of a multi-line secret', () => {
    const r = new Redactor().add('KEY', 'line-one-secret\nline-two-secret').add('PASS', 'a b/c&d=e');
    expect(r.text('got line-two-secret')).toBe('got [REDACTED:KEY]');
    expect(r.text('url ?p=a%20b%2Fc%26d%3De')).toBe('url ?p=[REDACTED:PASS]');
  });

  it('a secret containing another is replaced whole, under its own name', () => {
    const r = new Redactor().add('SHORT', 'abcdef').add('LONG', 'xxabcdefyy');
    expect(r.text('xxabcdefyy abcdef')).toBe('[REDACTED:LONG] [REDACTED:SHORT]');
  });

  it('escapes regular-expression characters in secrets', () => {
    const r = new Redactor().add('RE', 'a.b*c(d)[e]$^');
    expect(r.text('a.b*c(d)[e]$^ axb')).toBe('[REDACTED:RE] axb');
  });

  it('fromEnv takes the named variables that are set and ignores empty ones', () => {
    const r = Redactor.fromEnv(['A', 'B', 'C'], { A: 'value-of-a', B: '' });
    expect(r.secretNames).toEqual(['A']);
    expect(r.text('value-of-a')).toBe('[REDACTED:A]');
    expect(new Redactor().empty).toBe(true);
  });

  it('redacts JSON-like values deeply, keys included, leaving other types alone', () => {
    const r = new Redactor().add('T', 'tok-123456');
    expect(r.value({ a: 'x tok-123456', n: 3, list: ['tok-123456', null, true], ['tok-123456']: { deep: 'tok-123456' } })).toEqual({
      a: 'x [REDACTED:T]',
      n: 3,
      list: ['[REDACTED:T]', null, true],
      '[REDACTED:T]': { deep: '[REDACTED:T]' },
    });
  });

  it('refuses a secret name that would make the marker ambiguous', () => {
    expect(() => new Redactor().add('bad name]', 'x')).toThrow('redact: secret name "bad name]" must be [A-Za-z0-9_.:-]+');
  });
});
