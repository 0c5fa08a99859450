/**
 * Kernel config fragments, final .config files and the Kconfig tree they are
 * checked against. Kconfig drops a requested option without a word when its
 * dependencies are unmet; this module finds every such drop and says why.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** One `CONFIG_X=val` or `# CONFIG_X is not set` line of a fragment. */
export interface ConfigRequest {
  /** Without the CONFIG_ prefix. */
  symbol: string;
  /** The value as written ('y', 'm', '"a,b"', '0x10'), or 'n' for `is not set`. */
  value: string;
  file: string;
  line: number;
}

const SET_RE = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^# CONFIG_([A-Za-z0-9_]+) is not set\s*$/;

/** Parse a fragment; `file` is the name used in diagnostics (repo-relative). */
export function parseFragment(text: string, file: string): ConfigRequest[] {
  const out: ConfigRequest[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    const set = SET_RE.exec(line);
    if (set) out.push({ symbol: set[1]!, value: set[2]!, file, line: i + 1 });
    const unset = UNSET_RE.exec(line);
    if (unset) out.push({ symbol: unset[1]!, value: 'n', file, line: i + 1 });
  });
  return out;
}

/** A final .config: symbol -> value, with 'n' for `is not set`. Absent symbols are invisible ones. */
export function parseConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of parseFragment(text, '.config')) out.set(r.symbol, r.value);
  return out;
}

/** merge_config.sh semantics: a later fragment overrides an earlier one. */
export function effectiveRequests(requests: ConfigRequest[]): ConfigRequest[] {
  const last = new Map<string, ConfigRequest>();
  for (const r of requests) {
    last.delete(r.symbol);
    last.set(r.symbol, r);
  }
  return [...last.values()];
}

// ---------------------------------------------------------------- Kconfig index

export type ConditionKind = 'depends on' | 'if' | 'menu' | 'choice' | 'choice prompt if';

export interface KconfigCondition {
  kind: ConditionKind;
  /** The expression (for a choice: its prompt or ''). */
  expr: string;
  /** Relative to the source tree. */
  file: string;
  line: number;
}

export interface KconfigDefinition {
  symbol: string;
  file: string;
  line: number;
  /** The symbol's own `depends on` lines, then the enclosing if/menu/choice blocks, innermost first. */
  conditions: KconfigCondition[];
}

export interface KconfigLookup {
  /** Definitions reachable from the top-level Kconfig for this arch. */
  definitions: KconfigDefinition[];
  /** `config SYM` lines anywhere in the tree (other arches included), when none is reachable. */
  elsewhere: { file: string; line: number }[];
}

export interface KconfigIndex {
  lookup(symbol: string): KconfigLookup;
}

interface Block {
  kind: 'if' | 'menu' | 'choice';
  conds: KconfigCondition[];
}

/**
 * Parses lazily on the first lookup (a drop or an absent symbol needs explaining):
 * follows `source` from the top-level Kconfig with SRCARCH substituted, so the
 * enclosing `if` blocks of sourcing files count too. Linux 6.1 (~1700 files) takes about a second.
 */
export function openKconfigIndex(srcDir: string, arch: { make_arch: string; srcarch: string }): KconfigIndex {
  // SRCARCH is data (specs/arch/<name>.yaml kernel.srcarch), like tuxmake's arch files: no arch name in code.
  const vars: Record<string, string> = { SRCARCH: arch.srcarch, ARCH: arch.make_arch };
  let defs: Map<string, KconfigDefinition[]> | undefined;
  let anywhere: Map<string, { file: string; line: number }[]> | undefined;

  const build = (): Map<string, KconfigDefinition[]> => {
    const map = new Map<string, KconfigDefinition[]>();
    const stack: Block[] = [];
    const seen = new Set<string>();
    const parseFile = (abs: string): void => {
      if (seen.has(abs) || !existsSync(abs)) return;
      seen.add(abs);
      const file = relative(srcDir, abs);
      const lines = readFileSync(abs, 'utf8').split('\n');
      // Where a `depends on` line goes: the last config/choice/menu opened (null: nowhere).
      let current: KconfigCondition[] | null = null;
      let helpIndent: number | undefined;
      let inHelp = false;
      for (let i = 0; i < lines.length; i++) {
        const lineNo = i + 1;
        let text = lines[i]!;
        while (text.endsWith('\\') && i + 1 < lines.length) text = text.slice(0, -1) + ' ' + lines[++i]!;
        const indent = indentOf(text);
        const t = text.trim();
        if (inHelp) {
          if (t === '') continue;
          // Like the Kconfig lexer: the first help line sets the indent (it may equal help's own).
          if (helpIndent === undefined && indent > 0) {
            helpIndent = indent;
            continue;
          }
          if (helpIndent !== undefined && indent >= helpIndent) continue;
          inHelp = false;
        }
        if (t === '' || t.startsWith('#')) continue;
        const [kw = '', ...rest] = t.split(/\s+/);
        const arg = rest.join(' ');
        switch (kw) {
          case 'config':
          case 'menuconfig': {
            const symbol = rest[0] ?? '';
            const own: KconfigCondition[] = [];
            const context = [...stack].reverse().flatMap((b) => b.conds);
            const def: KconfigDefinition = { symbol, file, line: lineNo, conditions: own };
            // Context conditions are appended once the entry's own lines are read.
            const list = map.get(symbol) ?? [];
            list.push(def);
            map.set(symbol, list);
            current = own;
            pendingContext.set(def, context);
            break;
          }
          case 'choice': {
            const b: Block = { kind: 'choice', conds: [{ kind: 'choice', expr: '', file, line: lineNo }] };
            stack.push(b);
            current = b.conds;
            break;
          }
          case 'endchoice':
            popBlock(stack, 'choice');
            current = null;
            break;
          case 'menu': {
            const b: Block = { kind: 'menu', conds: [] };
            stack.push(b);
            current = b.conds;
            break;
          }
          case 'endmenu':
            popBlock(stack, 'menu');
            current = null;
            break;
          case 'if':
            stack.push({ kind: 'if', conds: [{ kind: 'if', expr: arg, file, line: lineNo }] });
            current = null;
            break;
          case 'endif':
            popBlock(stack, 'if');
            current = null;
            break;
          case 'comment':
          case 'mainmenu':
            current = [];
            break;
          case 'prompt':
          case 'bool':
          case 'tristate':
            // A choice's prompt names it in diagnostics.
            if (current && current.length > 0 && current[0]!.kind === 'choice' && current[0]!.expr === '') {
              const m = /^("(?:[^"\\]|\\.)*")(?:\s+if\s+(.*))?$/.exec(arg);
              current[0]!.expr = m ? m[1]! : arg;
              // `prompt "..." if COND`: an invisible choice writes none of its symbols.
              if (m?.[2]) current.push({ kind: 'choice prompt if', expr: m[2], file, line: lineNo });
            }
            break;
          case 'depends':
            if (rest[0] === 'on' && current) {
              const expr = rest.slice(1).join(' ');
              const menu = [...stack].reverse().find((b) => b.conds === current && b.kind === 'menu');
              current.push({ kind: menu ? 'menu' : 'depends on', expr, file, line: lineNo });
            }
            break;
          case 'help':
          case '---help---':
            inHelp = true;
            helpIndent = undefined;
            break;
          case 'source':
          case 'osource':
          case 'rsource':
          case 'orsource': {
            const m = /^"([^"]*)"/.exec(arg);
            if (!m) break;
            let unknownVar = false;
            const p = m[1]!.replace(/\$\(([A-Za-z_]+)\)/g, (_, v: string) => {
              const val = vars[v];
              if (val === undefined) unknownVar = true;
              return val ?? '';
            });
            if (unknownVar || p.includes('*')) break;
            parseFile(kw.startsWith('r') || kw === 'orsource' ? join(dirname(abs), p) : join(srcDir, p));
            break;
          }
          default:
            break;
        }
      }
    };
    const pendingContext = new Map<KconfigDefinition, KconfigCondition[]>();
    parseFile(join(srcDir, 'Kconfig'));
    for (const [def, ctx] of pendingContext) def.conditions.push(...ctx);
    return map;
  };

  const scanAll = (): Map<string, { file: string; line: number }[]> => {
    const map = new Map<string, { file: string; line: number }[]>();
    for (const abs of findKconfigFiles(srcDir)) {
      const file = relative(srcDir, abs);
      readFileSync(abs, 'utf8')
        .split('\n')
        .forEach((l, i) => {
          const m = /^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$/.exec(l);
          if (!m) return;
          const list = map.get(m[1]!) ?? [];
          list.push({ file, line: i + 1 });
          map.set(m[1]!, list);
        });
    }
    return map;
  };

  return {
    lookup(symbol: string): KconfigLookup {
      defs ??= build();
      const definitions = defs.get(symbol) ?? [];
      if (definitions.length > 0) return { definitions, elsewhere: [] };
      anywhere ??= scanAll();
      return { definitions, elsewhere: anywhere.get(symbol) ?? [] };
    },
  };
}

function popBlock(stack: Block[], kind: Block['kind']): void {
  for (let i = stack.length - 1; i >= 0; i--) {
    if (stack[i]!.kind === kind) {
      stack.splice(i, 1);
      return;
    }
  }
}

function indentOf(s: string): number {
  let n = 0;
  for (const c of s) {
    if (c === ' ') n++;
    else if (c === '\t') n = (Math.floor(n / 8) + 1) * 8;
    else break;
  }
  return n;
}

function findKconfigFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      if (ent.name.startsWith('.')) continue;
      const abs = join(dir, ent.name);
      if (ent.isDirectory()) walk(abs);
      else if (ent.name.startsWith('Kconfig') && (ent.isFile() || statSync(abs).isFile())) out.push(abs);
    }
  };
  walk(root);
  return out.sort();
}

// ---------------------------------------------------------------- expressions

type Tri = 0 | 1 | 2 | undefined;

/**
 * Evaluate a Kconfig dependency expression against a final .config:
 * 2 = y, 1 = m, 0 = n, undefined = cannot tell (a $(macro) or a parse problem).
 */
export function evalKconfigExpr(expr: string, config: Map<string, string>): Tri {
  const tokens = expr.match(/\$\([^)]*\)|"[^"]*"|&&|\|\||!=|<=|>=|[!=<>()]|[A-Za-z0-9_.\-]+/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos];
  const valueOf = (tok: string): string | undefined => {
    if (tok.startsWith('$(')) return undefined;
    if (tok.startsWith('"')) return tok.slice(1, -1);
    const v = config.get(tok);
    if (v !== undefined) return v.startsWith('"') ? v.slice(1, -1) : v;
    if (tok === 'y' || tok === 'm' || tok === 'n' || /^-?(0x)?[0-9a-fA-F]+$/.test(tok)) return tok;
    return 'n';
  };
  const tri = (v: string | undefined): Tri => (v === undefined ? undefined : v === 'y' ? 2 : v === 'm' ? 1 : 0);
  const primary = (): Tri => {
    const tok = tokens[pos++];
    if (tok === undefined) return undefined;
    if (tok === '!') {
      const v = primary();
      return v === undefined ? undefined : ((2 - v) as Tri);
    }
    if (tok === '(') {
      const v = orExpr();
      if (peek() === ')') pos++;
      return v;
    }
    const op = peek();
    if (op === '=' || op === '!=' || op === '<' || op === '>' || op === '<=' || op === '>=') {
      pos++;
      const rhsTok = tokens[pos++];
      const a = valueOf(tok);
      const b = rhsTok === undefined ? undefined : valueOf(rhsTok);
      if (a === undefined || b === undefined) return undefined;
      if (op === '=') return a === b ? 2 : 0;
      if (op === '!=') return a !== b ? 2 : 0;
      const na = Number(a);
      const nb = Number(b);
      if (Number.isNaN(na) || Number.isNaN(nb)) return undefined;
      const r = op === '<' ? na < nb : op === '>' ? na > nb : op === '<=' ? na <= nb : na >= nb;
      return r ? 2 : 0;
    }
    return tri(valueOf(tok));
  };
  const andExpr = (): Tri => {
    let v = primary();
    while (peek() === '&&') {
      pos++;
      const w = primary();
      v = v === 0 || w === 0 ? 0 : v === undefined || w === undefined ? undefined : (Math.min(v, w) as Tri);
    }
    return v;
  };
  const orExpr = (): Tri => {
    let v = andExpr();
    while (peek() === '||') {
      pos++;
      const w = andExpr();
      v = v === 2 || w === 2 ? 2 : v === undefined || w === undefined ? undefined : (Math.max(v, w) as Tri);
    }
    return v;
  };
  const v = orExpr();
  return pos === tokens.length ? v : undefined;
}

// ---------------------------------------------------------------- the check

export interface DependencyLine extends KconfigCondition {
  /** false when the expression evaluates to n against the final .config; null when it cannot be told. */
  met: boolean | null;
}

export interface SymbolResult {
  symbol: string;
  /** As requested; 'not set' for `is not set`. */
  requested: string;
  /** 'not set' when absent or `is not set`. */
  final: string;
  ok: boolean;
  file: string;
  line: number;
}

export interface DroppedSymbol {
  symbol: string;
  requested: string;
  final: string;
  file: string;
  line: number;
  /** The conditions that explain the drop (the unmet ones, or all when none is clearly unmet). */
  dependsOn: DependencyLine[];
  /** Set when the symbol exists only in Kconfig files this arch does not read. */
  definedOnlyIn?: string[];
  message: string;
}

export interface UnknownSymbol {
  symbol: string;
  requested: string;
  file: string;
  line: number;
  message: string;
}

export interface CheckResult {
  results: SymbolResult[];
  dropped: DroppedSymbol[];
  unknown: UnknownSymbol[];
}

const shown = (v: string): string => (v === 'n' ? 'not set' : v);

export function checkRequested(
  requests: ConfigRequest[],
  finalConfig: Map<string, string>,
  kconfigIndex: KconfigIndex,
): CheckResult {
  const results: SymbolResult[] = [];
  const dropped: DroppedSymbol[] = [];
  const unknown: UnknownSymbol[] = [];
  for (const r of effectiveRequests(requests)) {
    const finalRaw = finalConfig.get(r.symbol);
    const final = finalRaw === undefined ? 'not set' : shown(finalRaw);
    const requested = shown(r.value);
    let ok = r.value === 'n' ? finalRaw === undefined || finalRaw === 'n' : finalRaw === r.value;
    // An absent symbol may be one no Kconfig file defines: a typo or a plan error.
    if (finalRaw === undefined) {
      const look = kconfigIndex.lookup(r.symbol);
      if (look.definitions.length === 0 && look.elsewhere.length === 0) {
        ok = false;
        unknown.push({
          symbol: r.symbol,
          requested,
          file: r.file,
          line: r.line,
          message: `CONFIG_${r.symbol}: requested ${requested} (${r.file}:${r.line}), but no Kconfig file of this kernel defines it`,
        });
        results.push({ symbol: r.symbol, requested, final, ok, file: r.file, line: r.line });
        continue;
      }
    }
    results.push({ symbol: r.symbol, requested, final, ok, file: r.file, line: r.line });
    if (ok) continue;
    dropped.push(explainDrop(r, requested, final, finalConfig, kconfigIndex));
  }
  return { results, dropped, unknown };
}

function explainDrop(
  r: ConfigRequest,
  requested: string,
  final: string,
  finalConfig: Map<string, string>,
  index: KconfigIndex,
): DroppedSymbol {
  const look = index.lookup(r.symbol);
  const head = `CONFIG_${r.symbol}: requested ${requested} (${r.file}:${r.line}), final ${final}`;
  if (look.definitions.length === 0) {
    const where = look.elsewhere.map((e) => `${e.file}:${e.line}`);
    return {
      symbol: r.symbol,
      requested,
      final,
      file: r.file,
      line: r.line,
      dependsOn: [],
      definedOnlyIn: where,
      message: `${head}; defined only in ${where.join(', ')}, which this architecture does not read`,
    };
  }
  const all: DependencyLine[] = look.definitions.flatMap((d) =>
    d.conditions.map((c) => {
      const v = evalKconfigExpr(c.kind === 'choice' ? 'y' : c.expr, finalConfig);
      return { ...c, met: v === undefined ? null : v > 0 };
    }),
  );
  const unmet = all.filter((c) => c.met === false);
  const dependsOn = unmet.length > 0 ? unmet : all;
  const why =
    dependsOn.length === 0
      ? 'no dependency is unmet (check select, choice and range)'
      : dependsOn.map(describeCondition).join('; ');
  return { symbol: r.symbol, requested, final, file: r.file, line: r.line, dependsOn, message: `${head}; ${why}` };
}

function describeCondition(c: KconfigCondition): string {
  const at = `(${c.file}:${c.line})`;
  switch (c.kind) {
    case 'depends on':
      return `depends on ${c.expr} ${at}`;
    case 'if':
      return `inside if ${c.expr} ${at}`;
    case 'menu':
      return `inside a menu that depends on ${c.expr} ${at}`;
    case 'choice':
      return `in choice ${c.expr ? c.expr + ' ' : ''}${at}`;
    case 'choice prompt if':
      return `in a choice shown only if ${c.expr} ${at}`;
  }
}
