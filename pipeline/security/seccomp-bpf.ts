/**
 * A small classic-BPF assembler for seccomp filters, its decoder and an
 * interpreter for the same instruction subset.
 *
 * The filter (struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k):
 *   ld  [arch]; jeq AUDIT_ARCH ? next : KILL_PROCESS
 *   ld  [nr]
 *   (x32 ABIs only) jset X32_BIT ? KILL_PROCESS : next
 *   jeq nr1 ? ALLOW : next … jeq nrN ? ALLOW : next; ret DEFAULT; ret ALLOW
 * Conditional jumps reach at most 255 instructions ahead, so the allow list
 * is cut into chunks of up to MAX_CHUNK compares, each ending in its own
 * `ret ALLOW` with a `ja` over it into the next chunk. A linear list is fine
 * for a whitelist of tens of entries; the order of compares is the sorted nrs.
 */

// Opcodes (include/uapi/linux/filter.h, bpf_common.h).
export const BPF_LD_W_ABS = 0x20;
export const BPF_JMP_JA = 0x05;
export const BPF_JMP_JEQ_K = 0x15;
export const BPF_JMP_JGE_K = 0x35;
export const BPF_JMP_JSET_K = 0x45;
export const BPF_RET_K = 0x06;

// Return values (include/uapi/linux/seccomp.h).
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ACTION_FULL = 0xffff0000;

// struct seccomp_data offsets: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
export const OFFSET_NR = 0;
export const OFFSET_ARCH = 4;

/** EPERM is 1 in asm-generic/errno-base.h, which every Linux arch uses. */
export const EPERM = 1;
/** Compares per chunk: the first compare jumps MAX_CHUNK ahead to the chunk's `ret ALLOW`. */
export const MAX_CHUNK = 255;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export type DefaultAction = 'kill_process' | 'errno' | 'log';

/** The seccomp return value for the spec's default_action. */
export function actionValue(a: DefaultAction): number {
  switch (a) {
    case 'kill_process':
      return SECCOMP_RET_KILL_PROCESS;
    case 'errno':
      return (SECCOMP_RET_ERRNO | EPERM) >>> 0;
    case 'log':
      return SECCOMP_RET_LOG;
  }
}

/** A readable name for a return value. */
export function actionName(v: number): string {
  const action = (v & SECCOMP_RET_ACTION_FULL) >>> 0;
  if (action === SECCOMP_RET_KILL_PROCESS) return 'KILL_PROCESS';
  if (action === SECCOMP_RET_KILL_THREAD) return 'KILL_THREAD';
  if (action === SECCOMP_RET_TRAP) return 'TRAP';
  if (action === SECCOMP_RET_ERRNO) return `ERRNO(${v & 0xffff})`;
  if (action === SECCOMP_RET_LOG) return 'LOG';
  if (action === SECCOMP_RET_ALLOW) return 'ALLOW';
  return `0x${(v >>> 0).toString(16)}`;
}

export interface FilterInput {
  auditArch: number;
  /** Refuse numbers with this bit (x32 on x86_64); undefined: no such ABI. */
  x32Bit?: number;
  /** Syscall numbers to allow. */
  allow: readonly number[];
  defaultAction: DefaultAction;
}

const ins = (code: number, k: number, jt = 0, jf = 0): Insn => ({ code, jt, jf, k: k >>> 0 });

/** Assemble the filter. */
export function assembleFilter(f: FilterInput): Insn[] {
  const nrs = [...new Set(f.allow)].sort((a, b) => a - b);
  for (const n of nrs) if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not a syscall number: ${n}`);
  const prog: Insn[] = [
    ins(BPF_LD_W_ABS, OFFSET_ARCH),
    ins(BPF_JMP_JEQ_K, f.auditArch, 1, 0),
    ins(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ins(BPF_LD_W_ABS, OFFSET_NR),
  ];
  if (f.x32Bit !== undefined) {
    prog.push(ins(BPF_JMP_JSET_K, f.x32Bit, 0, 1), ins(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
  }
  const deflt = actionValue(f.defaultAction);
  if (nrs.length === 0) {
    prog.push(ins(BPF_RET_K, deflt));
    return prog;
  }
  for (let start = 0; start < nrs.length; start += MAX_CHUNK) {
    const chunk = nrs.slice(start, start + MAX_CHUNK);
    const last = start + MAX_CHUNK >= nrs.length;
    // Compare i (0-based) jumps over the remaining compares and the one
    // instruction after them (ja or ret DEFAULT) to the chunk's ret ALLOW.
    chunk.forEach((nr, i) => prog.push(ins(BPF_JMP_JEQ_K, nr, chunk.length - i, 0)));
    // ja +1: skip this chunk's ret ALLOW into the next chunk.
    prog.push(last ? ins(BPF_RET_K, deflt) : ins(BPF_JMP_JA, 1));
    prog.push(ins(BPF_RET_K, SECCOMP_RET_ALLOW));
  }
  return prog;
}

/** struct sock_filter[] bytes. */
export function encodeFilter(prog: readonly Insn[], byteOrder: 'little' | 'big' = 'little'): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  const le = byteOrder === 'little';
  prog.forEach((p, i) => {
    const o = i * 8;
    if (le) buf.writeUInt16LE(p.code, o);
    else buf.writeUInt16BE(p.code, o);
    buf.writeUInt8(p.jt, o + 2);
    buf.writeUInt8(p.jf, o + 3);
    if (le) buf.writeUInt32LE(p.k >>> 0, o + 4);
    else buf.writeUInt32BE(p.k >>> 0, o + 4);
  });
  return buf;
}

export function decodeFilter(buf: Uint8Array, byteOrder: 'little' | 'big' = 'little'): Insn[] {
  if (buf.length === 0 || buf.length % 8 !== 0) throw new RangeError(`a filter is a whole number of 8-byte instructions, got ${buf.length} bytes`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const le = byteOrder === 'little';
  const out: Insn[] = [];
  for (let o = 0; o < b.length; o += 8) {
    out.push({
      code: le ? b.readUInt16LE(o) : b.readUInt16BE(o),
      jt: b.readUInt8(o + 2),
      jf: b.readUInt8(o + 3),
      k: le ? b.readUInt32LE(o + 4) : b.readUInt32BE(o + 4),
    });
  }
  return out;
}

/** One line per instruction, as bpf_dbg/seccomp-tools print roughly. */
export function disassemble(prog: readonly Insn[]): string[] {
  const h = (k: number) => `0x${(k >>> 0).toString(16).padStart(8, '0')}`;
  return prog.map((p, i) => {
    const at = String(i).padStart(4, '0');
    switch (p.code) {
      case BPF_LD_W_ABS:
        return `${at}: ld [${p.k}]${p.k === OFFSET_NR ? ' ; nr' : p.k === OFFSET_ARCH ? ' ; arch' : ''}`;
      case BPF_JMP_JEQ_K:
      case BPF_JMP_JGE_K:
      case BPF_JMP_JSET_K: {
        const op = p.code === BPF_JMP_JEQ_K ? 'jeq' : p.code === BPF_JMP_JGE_K ? 'jge' : 'jset';
        const k = p.code === BPF_JMP_JEQ_K && p.k < 0x10000 ? String(p.k) : h(p.k);
        return `${at}: ${op} #${k} jt ${i + 1 + p.jt} jf ${i + 1 + p.jf}`;
      }
      case BPF_JMP_JA:
        return `${at}: ja ${i + 1 + p.k}`;
      case BPF_RET_K:
        return `${at}: ret ${actionName(p.k)}`;
      default:
        return `${at}: unknown code 0x${p.code.toString(16)} jt ${p.jt} jf ${p.jf} k ${h(p.k)}`;
    }
  });
}

export interface SeccompData {
  nr: number;
  arch: number;
}

/**
 * Run the filter on one syscall, as the kernel would for this subset of
 * classic BPF; throws on an instruction outside it or a jump out of the program.
 */
export function evaluate(prog: readonly Insn[], data: SeccompData): number {
  let a = 0;
  let pc = 0;
  for (let steps = 0; steps <= prog.length; steps++) {
    const p = prog[pc];
    if (!p) throw new RangeError(`jump out of the program to ${pc}`);
    switch (p.code) {
      case BPF_LD_W_ABS:
        if (p.k === OFFSET_NR) a = data.nr >>> 0;
        else if (p.k === OFFSET_ARCH) a = data.arch >>> 0;
        else throw new RangeError(`ld [${p.k}] is not modelled`);
        pc++;
        break;
      case BPF_JMP_JEQ_K:
        pc += 1 + (a === p.k >>> 0 ? p.jt : p.jf);
        break;
      case BPF_JMP_JGE_K:
        pc += 1 + (a >= p.k >>> 0 ? p.jt : p.jf);
        break;
      case BPF_JMP_JSET_K:
        pc += 1 + ((a & p.k) !== 0 ? p.jt : p.jf);
        break;
      case BPF_JMP_JA:
        pc += 1 + p.k;
        break;
      case BPF_RET_K:
        return p.k >>> 0;
      default:
        throw new RangeError(`instruction ${pc}: code 0x${p.code.toString(16)} is not modelled`);
    }
  }
  throw new RangeError('no return reached (a backward jump?)');
}

export interface StructureReport {
  ok: boolean;
  problems: string[];
}

/**
 * What must hold of every filter this repository emits: the arch check first
 * (mismatch: kill), the x32 refusal where the ABI has one, every allowed nr
 * allowed, a sample of others given the default action, jumps within range.
 */
export function checkFilterStructure(prog: readonly Insn[], f: FilterInput): StructureReport {
  const problems: string[] = [];
  const at = (i: number) => prog[i];
  const same = (i: number, code: number, k: number) => at(i)?.code === code && at(i)!.k >>> 0 === k >>> 0;
  if (prog.length > 4096) problems.push(`${prog.length} instructions: over BPF_MAXINSNS (4096)`);
  if (!same(0, BPF_LD_W_ABS, OFFSET_ARCH)) problems.push('instruction 0 does not load seccomp_data.arch');
  if (!same(1, BPF_JMP_JEQ_K, f.auditArch) || at(1)!.jt !== 1 || at(1)!.jf !== 0) problems.push(`instruction 1 does not compare the arch with 0x${f.auditArch.toString(16)}`);
  if (!same(2, BPF_RET_K, SECCOMP_RET_KILL_PROCESS)) problems.push('an arch mismatch does not kill the process (instruction 2)');
  // With a kill default an x32 nr dies anyway; the refusal must be there for errno and log too.
  if (f.x32Bit !== undefined && !(same(3, BPF_LD_W_ABS, OFFSET_NR) && same(4, BPF_JMP_JSET_K, f.x32Bit) && at(4)!.jt === 0 && at(4)!.jf === 1 && same(5, BPF_RET_K, SECCOMP_RET_KILL_PROCESS))) {
    problems.push(`instructions 3-5 do not kill a nr with the x32 bit 0x${f.x32Bit.toString(16)}`);
  }
  prog.forEach((p, i) => {
    const isCond = p.code === BPF_JMP_JEQ_K || p.code === BPF_JMP_JGE_K || p.code === BPF_JMP_JSET_K;
    if (isCond && (i + 1 + p.jt >= prog.length || i + 1 + p.jf >= prog.length)) problems.push(`instruction ${i} jumps past the end`);
    if (p.code === BPF_JMP_JA && i + 1 + p.k >= prog.length) problems.push(`instruction ${i} jumps past the end`);
  });
  const deflt = actionValue(f.defaultAction);
  const run = (d: SeccompData): number | null => {
    try {
      return evaluate(prog, d);
    } catch (err) {
      problems.push(`nr ${d.nr}: ${(err as Error).message}`);
      return null;
    }
  };
  const wrongArch = (f.auditArch ^ 0x1) >>> 0;
  for (const nr of f.allow) {
    const r = run({ nr, arch: f.auditArch });
    if (r !== SECCOMP_RET_ALLOW) problems.push(`nr ${nr} is not allowed (${r === null ? 'error' : actionName(r)})`);
    if (run({ nr, arch: wrongArch }) !== SECCOMP_RET_KILL_PROCESS) problems.push(`nr ${nr} under another arch is not killed`);
    if (f.x32Bit !== undefined && run({ nr: (nr | f.x32Bit) >>> 0, arch: f.auditArch }) !== SECCOMP_RET_KILL_PROCESS) {
      problems.push(`nr ${nr} with the x32 bit is not killed`);
    }
  }
  const allowed = new Set(f.allow);
  const top = Math.max(0, ...f.allow) + 2;
  for (let nr = 0; nr <= top; nr++) {
    if (allowed.has(nr)) continue;
    const r = run({ nr, arch: f.auditArch });
    if (r !== deflt) problems.push(`nr ${nr} is not in the list but gets ${r === null ? 'an error' : actionName(r)}, not ${actionName(deflt)}`);
  }
  return { ok: problems.length === 0, problems };
}
