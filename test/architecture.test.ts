/**
 * The layering rules of docs/architecture.md, checked on the import statements
 * of every shipped source file: layers point one way, no step imports another
 * step, and there is no import cycle.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';

const ROOT = repoRootDir();
const SHIPPED = ['bin', 'lib', 'vault', 'qemu', 'pipeline', 'report', 'host'];

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, e);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...walk(rel));
    else if (rel.endsWith('.ts') && !rel.endsWith('.test.ts')) out.push(rel);
  }
  return out;
}

/** Repo-relative .ts files a source imports (relative specifiers only; type-only imports count too). */
export function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    out.push(normalize(join(dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
  }
  return out;
}

const files = SHIPPED.flatMap(walk);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** The layer a file belongs to, most specific first. */
function layer(f: string): string {
  const p = f.split('/');
  if (p[0] === 'pipeline') {
    if (p[1] === 'steps') return 'steps';
    if (p[1] === 'run') return 'run';
    if (p[1] === 'catalog') return 'catalog';
    return 'domain';
  }
  return p[0]!;
}

/** Which layers each layer may import (itself included). */
const MAY_IMPORT: Record<string, string[]> = {
  lib: ['lib'],
  vault: ['vault', 'lib'],
  qemu: ['qemu', 'lib'],
  catalog: ['catalog', 'qemu', 'lib'],
  domain: ['domain', 'catalog', 'qemu', 'lib'],
  steps: ['steps', 'domain', 'catalog', 'qemu', 'lib'],
  run: ['run', 'steps', 'domain', 'catalog', 'qemu', 'vault', 'lib'],
  report: ['report', 'run', 'domain', 'catalog', 'qemu', 'vault', 'lib'],
  host: ['host', 'run', 'domain', 'catalog', 'qemu', 'vault', 'lib'],
  bin: ['bin', 'report', 'host', 'run', 'steps', 'domain', 'catalog', 'qemu', 'vault', 'lib'],
};

describe('architecture', () => {
  test('every import resolves to a shipped source file', () => {
    const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${f} -> ${d}`));
    expect(missing).toEqual([]);
  });

  test('layers point one way (bin -> report, host -> run -> steps -> domain -> catalog -> qemu, vault -> lib)', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      for (const d of deps) if (!MAY_IMPORT[layer(f)]!.includes(layer(d))) bad.push(`${f} (${layer(f)}) imports ${d} (${layer(d)})`);
    }
    expect(bad).toEqual([]);
  });

  test('no step imports another step (index.ts, the registry, imports them all)', () => {
    const bad = [...graph]
      .filter(([f]) => layer(f) === 'steps' && !f.endsWith('/index.ts'))
      .flatMap(([f, deps]) => deps.filter((d) => layer(d) === 'steps').map((d) => `${f} -> ${d}`));
    expect(bad).toEqual([]);
  });

  test('no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => relative('.', x)).join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  test('no test helper in a shipped folder', () => {
    expect(files.filter((f) => /fixture|fake|helper/i.test(f.split('/').pop()!))).toEqual([]);
  });
});
