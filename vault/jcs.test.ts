import { describe, expect, it } from 'vitest';
import { canonicalize, isCanonical } from './jcs.js';

// RFC 8785 §3.2.2 ("Sample data" and its canonical form).
const SAMPLE_IN = `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
  "literals": [null, true, false]
}`;
const SAMPLE_OUT = `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`;

// RFC 8785 §3.2.3 (sorting of properties).
const SORT_IN = `{
  "\\u20ac": "Euro Sign",
  "\\r": "Carriage Return",
  "\\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\\ud83d\\ude00": "Emoji: Grinning Face",
  "\\u0080": "Control",
  "\\u00f6": "Latin Small Letter O With Diaeresis"
}`;
const SORT_KEYS = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'];

// RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS number strings.
const NUMBERS: [string, string][] = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'],
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

function fromBits(hex: string): number {
  return Buffer.from(hex, 'hex').readDoubleBE(0);
}

describe('RFC 8785 JCS', () => {
  it('canonicalizes the RFC 8785 §3.2.2 sample', () => {
    expect(canonicalize(JSON.parse(SAMPLE_IN))).toBe(SAMPLE_OUT);
  });

  it('sorts properties by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    const out = canonicalize(JSON.parse(SORT_IN));
    // Read the keys off the string: Object.keys would list integer-like keys ("1") first.
    const keys = [...out.matchAll(/"((?:[^"\\]|\\.)*)":"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    expect(keys).toEqual(SORT_KEYS);
    expect(out.startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö"')).toBe(true);
  });

  it.each(NUMBERS)('serializes IEEE 754 %s as %s (RFC 8785 Appendix B)', (bits, want) => {
    expect(canonicalize(fromBits(bits))).toBe(want);
  });

  it('refuses NaN, Infinity and lone surrogates', () => {
    expect(() => canonicalize(fromBits('7fffffffffffffff'))).toThrow('JCS: NaN is not a JSON number');
    expect(() => canonicalize(fromBits('7ff0000000000000'))).toThrow('JCS: Infinity is not a JSON number');
    expect(() => canonicalize({ a: '\ud800' })).toThrow('JCS: lone surrogate in string');
  });

  it('isCanonical accepts JCS bytes and refuses every other spelling of the same value', () => {
    expect(isCanonical(Buffer.from(SAMPLE_OUT))).toBe(true);
    expect(isCanonical(Buffer.from(SAMPLE_IN))).toBe(false);
    expect(isCanonical(Buffer.from('{"b":1,"a":2}'))).toBe(false);
    expect(isCanonical(Buffer.from('{"a":1.0}'))).toBe(false);
    expect(isCanonical(Buffer.from('{"a":"\\u0041"}'))).toBe(false);
    expect(isCanonical(Buffer.from('{"a":1,"a":1}'))).toBe(false);
    expect(isCanonical(Buffer.from('\ufeff{"a":1}'))).toBe(false);
    expect(isCanonical(Buffer.from('{"a":1}\n'))).toBe(false);
    expect(isCanonical(Buffer.from([0x22, 0xff, 0x22]))).toBe(false);
    expect(isCanonical(Buffer.from('{"a":1}'))).toBe(true);
  });
});
