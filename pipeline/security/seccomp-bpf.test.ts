import { describe, expect, it } from 'vitest';
import {
  BPF_JMP_JA,
  BPF_JMP_JEQ_K,
  BPF_LD_W_ABS,
  BPF_RET_K,
  MAX_CHUNK,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_LOG,
  actionValue,
  assembleFilter,
  checkFilterStructure,
  decodeFilter,
  disassemble,
  encodeFilter,
  evaluate,
  type FilterInput,
} from './seccomp-bpf.js';

const X86 = 0xc000003e;
const ARM64 = 0xc00000b7;
const X32 = 0x40000000;

describe('seccomp BPF assembler', () => {
  it('emits arch check, x32 refusal, the sorted compares, default and allow', () => {
    const prog = assembleFilter({ auditArch: X86, x32Bit: X32, allow: [39, 0, 1], defaultAction: 'kill_process' });
    expect(disassemble(prog)).toEqual([
      '0000: ld [4] ; arch',
      '0001: jeq #0xc000003e jt 3 jf 2',
      '0002: ret KILL_PROCESS',
      '0003: ld [0] ; nr',
      '0004: jset #0x40000000 jt 5 jf 6',
      '0005: ret KILL_PROCESS',
      '0006: jeq #0 jt 10 jf 7',
      '0007: jeq #1 jt 10 jf 8',
      '0008: jeq #39 jt 10 jf 9',
      '0009: ret KILL_PROCESS',
      '0010: ret ALLOW',
    ]);
  });

  it('has no x32 check where the arch has no such ABI, and encodes the default actions', () => {
    const prog = assembleFilter({ auditArch: ARM64, allow: [172], defaultAction: 'errno' });
    expect(prog.map((p) => p.code)).toEqual([BPF_LD_W_ABS, BPF_JMP_JEQ_K, BPF_RET_K, BPF_LD_W_ABS, BPF_JMP_JEQ_K, BPF_RET_K, BPF_RET_K]);
    expect(prog[5]!.k).toBe((SECCOMP_RET_ERRNO | 1) >>> 0);
    expect(actionValue('kill_process')).toBe(0x80000000);
    expect(actionValue('errno')).toBe(0x00050001);
    expect(actionValue('log')).toBe(SECCOMP_RET_LOG);
  });

  it('encodes struct sock_filter little-endian, 8 bytes each, and decodes it back', () => {
    const prog = assembleFilter({ auditArch: X86, x32Bit: X32, allow: [39], defaultAction: 'kill_process' });
    const bytes = encodeFilter(prog, 'little');
    expect(bytes.length).toBe(prog.length * 8);
    // ld [4]: code 0x0020, jt 0, jf 0, k 4.
    expect(bytes.subarray(0, 8).toString('hex')).toBe('2000000004000000');
    // jeq #AUDIT_ARCH_X86_64 jt 1 jf 0.
    expect(bytes.subarray(8, 16).toString('hex')).toBe('150001003e0000c0');
    expect(decodeFilter(bytes)).toEqual(prog);
    expect(decodeFilter(encodeFilter(prog, 'big'), 'big')).toEqual(prog);
    expect(() => decodeFilter(bytes.subarray(0, 12))).toThrow('a filter is a whole number of 8-byte instructions, got 12 bytes');
  });

  it('evaluates as the kernel would: wrong arch and x32 killed, listed allowed, the rest default', () => {
    const f: FilterInput = { auditArch: X86, x32Bit: X32, allow: [0, 39, 231], defaultAction: 'errno' };
    const prog = assembleFilter(f);
    expect(evaluate(prog, { nr: 39, arch: X86 })).toBe(SECCOMP_RET_ALLOW);
    expect(evaluate(prog, { nr: 39, arch: ARM64 })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(evaluate(prog, { nr: 39 | X32, arch: X86 })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(evaluate(prog, { nr: 63, arch: X86 })).toBe(0x00050001);
    // A negative nr (-1 as u32) has the x32 bit set: killed, never allowed.
    expect(evaluate(prog, { nr: -1, arch: X86 })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(checkFilterStructure(prog, f)).toEqual({ ok: true, problems: [] });
  });

  it('keeps every jump within 255 for long lists (chunks joined by ja) and still allows exactly the list', () => {
    const allow = Array.from({ length: 600 }, (_, i) => i * 3 + 1);
    const f: FilterInput = { auditArch: X86, x32Bit: X32, allow, defaultAction: 'kill_process' };
    const prog = assembleFilter(f);
    for (const p of prog) {
      expect(p.jt).toBeLessThanOrEqual(255);
      expect(p.jf).toBeLessThanOrEqual(255);
    }
    // 600 compares in chunks of 255: 3 chunks, each closed by ja/ret default and ret allow.
    expect(prog.filter((p) => p.code === BPF_JMP_JA)).toHaveLength(Math.ceil(600 / MAX_CHUNK) - 1);
    expect(prog.filter((p) => p.code === BPF_JMP_JEQ_K && p.jt === MAX_CHUNK)).toHaveLength(2);
    expect(prog).toHaveLength(6 + 600 + 3 * 2);
    expect(checkFilterStructure(prog, f)).toEqual({ ok: true, problems: [] });
    const allowed = new Set(allow);
    for (let nr = 0; nr < 1900; nr++) {
      expect(evaluate(prog, { nr, arch: X86 }), `nr ${nr}`).toBe(allowed.has(nr) ? SECCOMP_RET_ALLOW : SECCOMP_RET_KILL_PROCESS);
    }
  });

  it('the structure check catches a filter that does not check the arch first, or lets a listed nr through wrongly', () => {
    const f: FilterInput = { auditArch: X86, x32Bit: X32, allow: [39], defaultAction: 'kill_process' };
    const good = assembleFilter(f);
    const noArch = good.slice(3);
    expect(checkFilterStructure(noArch, f).problems).toEqual([
      'instruction 0 does not load seccomp_data.arch',
      'instruction 1 does not compare the arch with 0xc000003e',
      'instructions 3-5 do not kill a nr with the x32 bit 0x40000000',
      'nr 39 under another arch is not killed',
    ]);
    const allowOtherArch = good.map((p, i) => (i === 2 ? { ...p, k: SECCOMP_RET_ALLOW } : p));
    expect(checkFilterStructure(allowOtherArch, f).problems).toEqual([
      'an arch mismatch does not kill the process (instruction 2)',
      'nr 39 under another arch is not killed',
    ]);
    const noX32 = [...good.slice(0, 4), ...good.slice(6)];
    expect(checkFilterStructure(noX32, f).problems).toEqual(['instructions 3-5 do not kill a nr with the x32 bit 0x40000000']);
    // With errno as the default an x32 nr would only fail with EPERM: the interpreter sees it too.
    const fe: FilterInput = { ...f, defaultAction: 'errno' };
    const e = assembleFilter(fe);
    expect(checkFilterStructure([...e.slice(0, 4), ...e.slice(6)], fe).problems).toEqual([
      'instructions 3-5 do not kill a nr with the x32 bit 0x40000000',
      'nr 39 with the x32 bit is not killed',
    ]);
    const allowAll = good.map((p, i) => (i === good.length - 2 ? { ...p, k: SECCOMP_RET_ALLOW } : p));
    expect(checkFilterStructure(allowAll, f).problems[0]).toBe('nr 0 is not in the list but gets ALLOW, not KILL_PROCESS');
    const wrongJump = good.map((p) => (p.code === BPF_JMP_JEQ_K && p.k === 39 ? { ...p, jt: 40 } : p));
    expect(checkFilterStructure(wrongJump, f).problems).toEqual(['instruction 6 jumps past the end', 'nr 39: jump out of the program to 47', 'nr 39 is not allowed (error)']);
  });
});
