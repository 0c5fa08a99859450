/**
 * YAML with source locations: every diagnostic about a spec file names its
 * file:line:col, whether it comes from the YAML parser, the JSON Schema or a
 * later graph check. Schema checks go through lib/data.ts (the one loader).
 */
import { parseDocument, LineCounter, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import type { ErrorObject } from 'ajv';
import type { SourceLocation } from './errors.js';

export interface Diagnostic extends SourceLocation {
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

export interface LocatedYaml {
  file: string;
  value: unknown;
  /** Parse errors; when non-empty, value is unusable. */
  errors: Diagnostic[];
  /** Location of the value at `path`; with key=true, of the key naming it. Falls back to the nearest parent. */
  locate(path: readonly (string | number)[], key?: boolean): SourceLocation;
}

export function parseYaml(text: string, file: string): LocatedYaml {
  const lc = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourceLocation => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  const errors: Diagnostic[] = doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split('\n')[0]! }));
  const locate = (path: readonly (string | number)[], key = false): SourceLocation => {
    let node: unknown = doc.contents;
    let best: SourceLocation = node && (node as Node).range ? at((node as Node).range![0]) : { file, line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
        if (!pair) return best;
        const k = pair.key as Node;
        if (last && key && k.range) return at(k.range[0]);
        node = pair.value;
        const r = (node as Node | null)?.range ?? k.range;
        if (r) best = at(r[0]);
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as Node | undefined;
        if (!item) return best;
        node = item;
        if (item.range) best = at(item.range[0]);
      } else {
        return best;
      }
    }
    return best;
  };
  return { file, value: errors.length ? undefined : doc.toJS(), errors, locate };
}

function pointerToPath(pointer: string): string[] {
  if (!pointer) return [];
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Turn ajv errors into located, human diagnostics (one per problem). */
export function schemaDiagnostics(src: LocatedYaml, errors: ErrorObject[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const path = pointerToPath(e.instancePath);
    let loc: SourceLocation;
    let message: string;
    const where = path.length ? path.join('.') : 'document';
    switch (e.keyword) {
      case 'additionalProperties': {
        const prop = String((e.params as { additionalProperty: string }).additionalProperty);
        loc = src.locate([...path, prop], true);
        message = `unknown field "${prop}"${path.length ? ` in ${where}` : ''}`;
        break;
      }
      case 'required': {
        const prop = String((e.params as { missingProperty: string }).missingProperty);
        loc = src.locate(path);
        message = `missing required field "${prop}"${path.length ? ` in ${where}` : ''}`;
        break;
      }
      case 'enum': {
        loc = src.locate(path);
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
        message = `${where}: must be one of ${allowed}`;
        break;
      }
      case 'pattern': {
        loc = src.locate(path);
        message = `${where}: ${JSON.stringify(valueAt(src.value, path))} does not match ${(e.params as { pattern: string }).pattern}`;
        break;
      }
      case 'oneOf':
      case 'anyOf':
      case 'if':
        // The specific branch errors say more; skip the summary.
        continue;
      default:
        loc = src.locate(path);
        message = `${where}: ${e.message ?? e.keyword}`;
    }
    const key = `${loc.line}:${loc.col}:${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ ...loc, message });
  }
  return out;
}

function valueAt(v: unknown, path: string[]): unknown {
  let cur = v;
  for (const p of path) cur = (cur as Record<string, unknown> | undefined)?.[p];
  return cur;
}

/** A YAML text's value; like yaml's parse it throws on a syntax error, but says file:line:col. */
export function yamlValue(text: string, file: string): unknown {
  const src = parseYaml(text, file);
  if (src.errors.length) throw new Error(formatDiagnostic(src.errors[0]!));
  return src.value;
}
