/**
 * P1.1: the WIT file an index (specs/p1/wit-interface.yaml) names is checked
 * with a real WIT parser — wit-parser from wasm-tools, as built to WebAssembly
 * in @bytecodealliance/jco-transpile — and compared with the index: pinned
 * sha256, package and version, each world's imports and exports as the parser
 * resolves them, and each interface's functions and types.
 *
 * The parser reports no position, so its errors are placed on the one token
 * of the .wit file they quote when that token occurs once, else on line 1.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InfraError, type SourceLocation } from '../../lib/errors.js';
import { sha256Hex } from '../../lib/hash.js';
import type { SpecCheckEnv, SpecProblem } from './spec-rules.js';

export const WIT_PARSER_MODULE = '@bytecodealliance/jco-transpile/wasm-tools';

interface WitInterfaceRef {
  namespace: string;
  package: string;
  interface: string;
  version?: { major: bigint | number; minor: bigint | number; patch: bigint | number };
}
interface WitTools {
  componentWitMetadataForWorld(
    wit: { tag: 'source'; val: string },
    world: string | undefined,
  ): Promise<{ imports: WitInterfaceRef[]; exports: WitInterfaceRef[] }>;
}

let parser: Promise<WitTools> | undefined;

/** The parser module, loaded once and only when a WIT spec is checked (it carries a 2 MB wasm). */
export function loadWitParser(): Promise<WitTools> {
  // A string variable, not a literal: the module is loaded at run time only.
  const mod: string = WIT_PARSER_MODULE;
  parser ??= (import(mod) as Promise<WitTools>).catch((err: unknown) => {
    parser = undefined;
    throw new InfraError(`the WIT parser ${WIT_PARSER_MODULE} cannot be loaded: ${(err as Error).message}`, 'run `npm ci`: it is a dependency of clawos-build');
  });
  return parser;
}

/** A declaration found in a .wit file, with where. */
export interface WitDecl {
  name: string;
  line: number;
  col: number;
}
export interface WitOutline {
  package?: WitDecl;
  interfaces: Map<string, WitDecl & { functions: WitDecl[]; types: WitDecl[] }>;
  worlds: Map<string, WitDecl>;
}

/** Comments blanked out (offsets kept), so tokens are found only in code. */
function stripComments(text: string): string {
  return text.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' '));
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

const TYPE_KEYWORDS = new Set(['record', 'enum', 'variant', 'flags', 'resource', 'type']);

/**
 * The outline of a .wit file the parser accepted: its package, and for each
 * interface the functions and types declared directly in it. A scan of the
 * tokens, not a parser: it runs only on text the real parser accepted.
 */
export function outlineWit(text: string): WitOutline {
  const code = stripComments(text);
  const tokens = [...code.matchAll(/%?[A-Za-z][A-Za-z0-9-]*|[0-9]+|[{}();:<>,=.@/*+-]/g)].map((m) => ({ t: m[0], at: m.index }));
  const decl = (i: number): WitDecl => ({ name: tokens[i]!.t.replace(/^%/, ''), ...lineCol(text, tokens[i]!.at) });
  const out: WitOutline = { interfaces: new Map(), worlds: new Map() };
  let depth = 0;
  let iface: (WitDecl & { functions: WitDecl[]; types: WitDecl[] }) | null = null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!.t;
    const next = tokens[i + 1]?.t;
    if (t === '{') depth++;
    else if (t === '}') {
      depth--;
      if (depth === 0) iface = null;
    } else if (depth === 0 && t === 'package') {
      let j = i + 1;
      let name = '';
      while (j < tokens.length && tokens[j]!.t !== ';') name += tokens[j++]!.t;
      out.package = { name, ...lineCol(text, tokens[i + 1]?.at ?? tokens[i]!.at) };
      i = j;
    } else if (depth === 0 && t === 'interface' && next !== undefined && tokens[i + 2]?.t === '{') {
      iface = { ...decl(i + 1), functions: [], types: [] };
      out.interfaces.set(iface.name, iface);
    } else if (depth === 0 && t === 'world' && next !== undefined && tokens[i + 2]?.t === '{') {
      out.worlds.set(next.replace(/^%/, ''), decl(i + 1));
    } else if (depth === 1 && iface) {
      if (TYPE_KEYWORDS.has(t) && next !== undefined && /^%?[A-Za-z]/.test(next) && tokens[i - 1]?.t !== ':') {
        iface.types.push(decl(i + 1));
        i++;
      } else if (next === ':' && (tokens[i + 2]?.t === 'func' || tokens[i + 2]?.t === 'async') && /^%?[A-Za-z]/.test(t)) {
        iface.functions.push(decl(i));
      }
    }
  }
  return out;
}

/** Where a parser message points: the one code token it quotes in backticks, else line 1. */
export function locateWitError(file: string, text: string, message: string): SourceLocation {
  const code = stripComments(text);
  for (const m of message.matchAll(/`([^`]+)`/g)) {
    const tok = m[1]!;
    const re = new RegExp(`(?<![A-Za-z0-9%-])%?${tok.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9-])`, 'g');
    const hits = [...code.matchAll(re)];
    if (hits.length === 1) return { file, ...lineCol(text, hits[0]!.index) };
  }
  return { file, line: 1, col: 1 };
}

interface WitIndex {
  version: string;
  wit: { file: string; sha256: string; package: string };
  interfaces: Record<string, { types: string[]; functions: string[] }>;
  worlds: Record<string, { imports: string[]; exports: string[] }>;
}

const ver = (v: WitInterfaceRef['version']) => (v ? `@${v.major}.${v.minor}.${v.patch}` : '');

function compareSets(found: string[], listed: string[], say: { extra: (n: string) => string; missing: (n: string) => string }): string[] {
  return [...found.filter((n) => !listed.includes(n)).map(say.extra), ...listed.filter((n) => !found.includes(n)).map(say.missing)];
}

/** P1.1 index against its WIT file, parsed by the real parser. The only check that reads another file and a parser. */
export async function checkWitIndex(spec: unknown, env: SpecCheckEnv): Promise<SpecProblem[]> {
  const s = spec as WitIndex;
  const out: SpecProblem[] = [];
  let bytes: Buffer;
  try {
    bytes = await readFile(join(env.repoRoot, s.wit.file));
  } catch (err) {
    return [{ path: ['wit', 'file'], message: `wit.file: cannot read ${s.wit.file}: ${(err as Error).message}` }];
  }
  const actual = sha256Hex(bytes);
  if (actual !== s.wit.sha256) {
    out.push({
      path: ['wit', 'sha256'],
      message: `wit.sha256: ${s.wit.file} has sha256 ${actual}, the index pins ${s.wit.sha256} (a changed WIT needs a new pin and version)`,
    });
  }
  const pkgVersion = s.wit.package.split('@')[1];
  if (pkgVersion !== s.version) {
    out.push({ path: ['wit', 'package'], message: `wit.package ${s.wit.package}: its version must be the spec version ${s.version}` });
  }

  const text = bytes.toString('utf8');
  const tools = await loadWitParser();
  const [pkgId] = s.wit.package.split('@');
  const nameOf = (r: WitInterfaceRef) => (`${r.namespace}:${r.package}` === pkgId ? r.interface : `${r.namespace}:${r.package}/${r.interface}${ver(r.version)}`);
  for (const [world, w] of Object.entries(s.worlds)) {
    let meta;
    try {
      meta = await tools.componentWitMetadataForWorld({ tag: 'source', val: text }, world);
    } catch (err) {
      const msg = String((err as Error).message ?? err).split('\n')[0]!;
      if (/^World `.*` not found/.test(msg)) {
        out.push({ path: ['worlds', world], key: true, message: `worlds.${world}: ${s.wit.file} has no world ${world}` });
        continue;
      }
      // The file does not parse or resolve: nothing else can be compared.
      return [...out, { path: ['wit', 'file'], message: `WIT parser: ${msg}`, at: locateWitError(s.wit.file, text, msg) }];
    }
    for (const [dir, found] of [
      ['imports', meta.imports.map(nameOf)],
      ['exports', meta.exports.map(nameOf)],
    ] as const) {
      const verb = dir === 'imports' ? 'import' : 'export';
      for (const message of compareSets(found, w[dir], {
        extra: (n) => `worlds.${world}.${dir}: the WIT world ${world} ${verb}s ${n}, which the index does not list`,
        missing: (n) => `worlds.${world}.${dir}: the index lists ${n}, which the WIT world ${world} does not ${verb}`,
      })) {
        out.push({ path: ['worlds', world, dir], message });
      }
    }
  }

  const outline = outlineWit(text);
  if (outline.package && outline.package.name !== s.wit.package) {
    out.push({ path: ['wit', 'package'], message: `wit.package ${s.wit.package}: ${s.wit.file} declares package ${outline.package.name}` });
  }
  for (const [name, d] of outline.worlds) {
    if (!s.worlds[name]) out.push({ path: ['worlds'], message: `worlds: ${s.wit.file}:${d.line}:${d.col} declares world ${name}, which the index does not list` });
  }
  for (const [name, i] of Object.entries(s.interfaces)) {
    const d = outline.interfaces.get(name);
    if (!d) {
      out.push({ path: ['interfaces', name], key: true, message: `interfaces.${name}: ${s.wit.file} declares no interface ${name}` });
      continue;
    }
    for (const kind of ['functions', 'types'] as const) {
      const found = d[kind].map((x) => x.name);
      for (const message of compareSets(found, i[kind], {
        extra: (n) => `interfaces.${name}.${kind}: ${s.wit.file} declares ${n} in ${name}, which the index does not list`,
        missing: (n) => `interfaces.${name}.${kind}: the index lists ${n}, which ${name} in ${s.wit.file} does not declare`,
      })) {
        out.push({ path: ['interfaces', name, kind], message });
      }
    }
  }
  for (const [name, d] of outline.interfaces) {
    if (!s.interfaces[name]) {
      out.push({ path: ['interfaces'], message: `interfaces: ${s.wit.file}:${d.line}:${d.col} declares interface ${name}, which the index does not list` });
    }
  }
  return out;
}
