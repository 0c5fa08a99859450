/**
 * Syscall numbers read from the kernel source tree being built: x86's
 * syscall_64.tbl, or asm-generic/unistd.h as an arch header includes it (arm64).
 *
 * unistd.h is C preprocessor text. Only what that file uses is evaluated:
 * #if/#ifdef/#ifndef/#else/#elif/#endif with defined(), ==, !=, <, >, <=, >=,
 * !, &&, ||, parentheses and integers; #define and #undef. Anything else in a
 * directive is a problem, never a guess, so a changed header fails loudly.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../lib/hash.js';
import type { SyscallTableSpec } from './seccomp-arch.js';

export interface TableFile {
  /** Relative to the kernel source tree. */
  path: string;
  sha256: string;
}

export interface SyscallTable {
  /** Syscall name (as the table spells it) -> number. */
  numbers: Map<string, number>;
  /** Every file the numbers came from, with its sha256. */
  files: TableFile[];
}

export type TableResult = { ok: true; table: SyscallTable } | { ok: false; problems: string[] };

/** Rows of a syscall_64.tbl-style table whose ABI is in `abis`. */
export function parseSyscallTbl(text: string, file: string, abis: readonly string[]): { numbers: Map<string, number>; problems: string[] } {
  const numbers = new Map<string, number>();
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [nr, abi, name] = line.split(/\s+/);
    if (nr === undefined || abi === undefined || name === undefined || !/^\d+$/.test(nr)) {
      problems.push(`${file}:${i + 1}: not a "<number> <abi> <name>" row: ${raw.trim()}`);
      return;
    }
    if (!abis.includes(abi)) return;
    const prev = numbers.get(name);
    if (prev !== undefined) problems.push(`${file}:${i + 1}: ${name} is listed twice (${prev} and ${nr})`);
    else numbers.set(name, Number(nr));
  });
  return { numbers, problems };
}

/** The `#define __ARCH_WANT_*` (and other object-like) macros an arch header defines. */
export function headerDefines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^\s*#\s*define\s+([A-Za-z_]\w*)(?:[ \t]+(.*?))?\s*$/gm)) out.set(m[1]!, m[2] ?? '');
  return out;
}

type Tok = { t: 'num'; v: number } | { t: 'id'; v: string } | { t: 'op'; v: string };

function tokenize(expr: string): Tok[] | string {
  const toks: Tok[] = [];
  const re = /\s*(?:(0x[0-9a-fA-F]+|\d+)[uUlL]*|([A-Za-z_]\w*)|(\|\||&&|==|!=|<=|>=|[()!<>]))/y;
  let pos = 0;
  while (pos < expr.length) {
    if (/^\s*$/.test(expr.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(expr);
    if (!m) return `cannot read "${expr.slice(pos).trim()}"`;
    pos = re.lastIndex;
    if (m[1] !== undefined) toks.push({ t: 'num', v: Number(m[1]) });
    else if (m[2] !== undefined) toks.push({ t: 'id', v: m[2] });
    else toks.push({ t: 'op', v: m[3]! });
  }
  return toks;
}

/** Evaluate a #if expression; a string is the reason it cannot be. */
export function evalCondition(expr: string, macros: ReadonlyMap<string, string>, depth = 0): number | string {
  const toks = tokenize(expr);
  if (typeof toks === 'string') return toks;
  let i = 0;
  const peek = () => toks[i];
  const isOp = (v: string) => peek()?.t === 'op' && peek()!.v === v;
  // Precedence climbing over the binary operators used in practice.
  const LEVELS: string[][] = [['||'], ['&&'], ['==', '!='], ['<', '>', '<=', '>=']];
  const value = (name: string): number | string => {
    const def = macros.get(name);
    if (def === undefined) return 0; // as cpp: an unknown identifier is 0
    if (depth > 16) return `macro ${name} expands too deeply`;
    if (def.trim() === '') return `macro ${name} is defined empty`;
    return evalCondition(def, macros, depth + 1);
  };
  const unary = (): number | string => {
    const tk = toks[i++];
    if (!tk) return 'expression ends early';
    if (tk.t === 'num') return tk.v;
    if (tk.t === 'op' && tk.v === '!') {
      const v = unary();
      return typeof v === 'string' ? v : v ? 0 : 1;
    }
    if (tk.t === 'op' && tk.v === '(') {
      const v = binary(0);
      if (typeof v === 'string') return v;
      if (!isOp(')')) return 'missing )';
      i++;
      return v;
    }
    if (tk.t === 'id' && tk.v === 'defined') {
      const paren = isOp('(');
      if (paren) i++;
      const name = toks[i++];
      if (!name || name.t !== 'id') return 'defined needs a macro name';
      if (paren) {
        if (!isOp(')')) return 'missing ) after defined(';
        i++;
      }
      return macros.has(name.v) ? 1 : 0;
    }
    if (tk.t === 'id') return value(tk.v);
    return `unexpected "${tk.v}"`;
  };
  const binary = (level: number): number | string => {
    if (level >= LEVELS.length) return unary();
    let left = binary(level + 1);
    while (typeof left === 'number' && peek()?.t === 'op' && LEVELS[level]!.includes(peek()!.v as string)) {
      const op = (toks[i++] as { v: string }).v;
      const right = binary(level + 1);
      if (typeof right === 'string') return right;
      left =
        op === '||' ? (left || right ? 1 : 0)
        : op === '&&' ? (left && right ? 1 : 0)
        : op === '==' ? (left === right ? 1 : 0)
        : op === '!=' ? (left !== right ? 1 : 0)
        : op === '<' ? (left < right ? 1 : 0)
        : op === '>' ? (left > right ? 1 : 0)
        : op === '<=' ? (left <= right ? 1 : 0)
        : left >= right ? 1 : 0;
    }
    return left;
  };
  const v = binary(0);
  if (typeof v === 'string') return v;
  if (i !== toks.length) return `unexpected "${String(toks[i]!.v)}"`;
  return v;
}

/**
 * The __NR_* numbers of asm-generic/unistd.h as seen with `predefined` macros
 * (the arch header's __ARCH_WANT_* and __BITS_PER_LONG). __NR_foo defined as
 * __NR3264_bar resolves to bar's number under the name foo (newfstatat).
 */
export function parseAsmGenericUnistd(
  text: string,
  file: string,
  predefined: ReadonlyMap<string, string>,
): { numbers: Map<string, number>; problems: string[] } {
  const macros = new Map(predefined);
  const problems: string[] = [];
  // Each frame: is this branch live, has any branch of the group been taken, was the parent live.
  const stack: { live: boolean; taken: boolean; parent: boolean }[] = [];
  const live = () => stack.every((f) => f.live);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + lines[++i]!;
    line = line.replace(/\/\*.*?\*\//g, ' ').replace(/\/\/.*$/, '');
    const m = /^\s*#\s*(\w+)\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const [, dir, rest] = m as unknown as [string, string, string];
    const where = `${file}:${lineNo}`;
    const cond = (expr: string): boolean => {
      const v = evalCondition(expr, macros);
      if (typeof v === 'string') {
        problems.push(`${where}: cannot evaluate #${dir} ${expr}: ${v}`);
        return false;
      }
      return v !== 0;
    };
    switch (dir) {
      case 'if':
      case 'ifdef':
      case 'ifndef': {
        const parent = live();
        const name = rest.split(/\s+/)[0] ?? '';
        const v = !parent ? false : dir === 'if' ? cond(rest) : dir === 'ifdef' ? macros.has(name) : !macros.has(name);
        stack.push({ live: v, taken: v, parent });
        break;
      }
      case 'elif': {
        const f = stack[stack.length - 1];
        if (!f) {
          problems.push(`${where}: #elif without #if`);
          break;
        }
        f.live = false;
        const v = f.parent && !f.taken && cond(rest);
        f.live = v;
        f.taken ||= v;
        break;
      }
      case 'else': {
        const f = stack[stack.length - 1];
        if (!f) {
          problems.push(`${where}: #else without #if`);
          break;
        }
        f.live = f.parent && !f.taken;
        f.taken = true;
        break;
      }
      case 'endif':
        if (!stack.pop()) problems.push(`${where}: #endif without #if`);
        break;
      case 'define':
        if (live()) {
          const d = /^([A-Za-z_]\w*)(\(.*?\))?\s*(.*)$/.exec(rest);
          // Function-like macros (__SYSCALL, __SC_3264 …) declare entry points, not numbers.
          if (d && !d[2]) macros.set(d[1]!, d[3] ?? '');
        }
        break;
      case 'undef':
        if (live()) macros.delete(rest);
        break;
      case 'include':
      case 'error':
      case 'warning':
      case 'pragma':
        break;
      default:
        problems.push(`${where}: unknown directive #${dir}`);
    }
  }
  if (stack.length) problems.push(`${file}: ${stack.length} #if block(s) not closed`);

  const numbers = new Map<string, number>();
  for (const name of macros.keys()) {
    if (!name.startsWith('__NR_') || name === '__NR_syscalls') continue;
    // Follow __NR_newfstatat -> __NR3264_fstatat -> 79.
    let v = macros.get(name)!.trim();
    const seen = new Set<string>();
    while (/^[A-Za-z_]\w*$/.test(v) && !seen.has(v) && macros.has(v)) {
      seen.add(v);
      v = macros.get(v)!.trim();
    }
    if (!/^\d+$/.test(v)) {
      problems.push(`${file}: ${name} does not resolve to a number (${macros.get(name)})`);
      continue;
    }
    numbers.set(name.slice('__NR_'.length), Number(v));
  }
  return { numbers, problems };
}

/** Read the table a spec names from the kernel source tree `srcDir`. */
export async function readSyscallTable(srcDir: string, spec: SyscallTableSpec): Promise<TableResult> {
  const files: TableFile[] = [];
  const read = async (rel: string): Promise<string | null> => {
    const buf = await readFile(join(srcDir, rel)).catch(() => null);
    if (buf) files.push({ path: rel, sha256: sha256Hex(buf) });
    return buf ? buf.toString('utf8') : null;
  };
  const text = await read(spec.path);
  if (text === null) return { ok: false, problems: [`${spec.path}: not found in the kernel source tree ${srcDir}`] };
  let parsed: { numbers: Map<string, number>; problems: string[] };
  if (spec.kind === 'syscall-tbl') {
    parsed = parseSyscallTbl(text, spec.path, spec.abis);
  } else {
    const header = await read(spec.arch_header);
    if (header === null) return { ok: false, problems: [`${spec.arch_header}: not found in the kernel source tree ${srcDir}`] };
    if (!new RegExp(`#\\s*include\\s*<${spec.path.replace(/^include\/uapi\//, '').replace(/[.]/g, '\\.')}>`).test(header)) {
      return { ok: false, problems: [`${spec.arch_header}: does not include ${spec.path}`] };
    }
    const predefined = headerDefines(header);
    predefined.set('__BITS_PER_LONG', String(spec.bits_per_long));
    parsed = parseAsmGenericUnistd(text, spec.path, predefined);
  }
  if (parsed.problems.length) return { ok: false, problems: parsed.problems };
  if (parsed.numbers.size === 0) return { ok: false, problems: [`${spec.path}: no syscall numbers found`] };
  return { ok: true, table: { numbers: parsed.numbers, files } };
}
