// P1.1: the WIT file checked by the real WIT parser and against its index.
import { describe, it, expect, afterEach } from 'vitest';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { checkSpec } from './spec-check.js';
import { locateWitError, outlineWit } from './wit-check.js';
import { sha256Hex } from '../../lib/hash.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WIT = 'specs/p1/wit/clawos.wit';

const cleanups: DirectoryResult[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await d.cleanup();
});

const realIndex = () => readFile(join(REPO, 'specs/p1/wit-interface.yaml'), 'utf8');
const realWit = () => readFile(join(REPO, WIT), 'utf8');

/** Check an index text with a WIT text in a temp repo; `pin` re-pins the index to the WIT given. */
async function check(index: string, wit: string, pin = true): Promise<string[]> {
  const d = await tmpDir({ unsafeCleanup: true });
  cleanups.push(d);
  await mkdir(join(d.path, 'specs/p1/wit'), { recursive: true });
  await mkdir(join(d.path, 'specs/schemas/p1'), { recursive: true });
  await writeFile(join(d.path, WIT), wit);
  await copyFile(join(REPO, 'specs/schemas/p1/wit-interface.schema.json'), join(d.path, 'specs/schemas/p1/wit-interface.schema.json'));
  const text = pin ? index.replace(/sha256: [0-9a-f]{64}/, `sha256: ${sha256Hex(wit)}`) : index;
  const schema = JSON.parse(await readFile(join(REPO, 'specs/schemas/p1/wit-interface.schema.json'), 'utf8')) as object;
  const r = await checkSpec(text, 'specs/p1/wit-interface.yaml', schema, { repoRoot: d.path });
  return r.ok ? [] : r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
}

function at(text: string, line: string, token = line): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(line));
  if (i < 0) throw new Error(`no line with ${line}`);
  return `${i + 1}:${lines[i]!.indexOf(token) + 1}`;
}

describe('P1.1 WIT index', () => {
  it('the real WIT parses with the real parser and matches its index', async () => {
    expect(await check(await realIndex(), await realWit(), false)).toEqual([]);
  });

  it('refuses a WIT whose bytes are not the pinned ones', async () => {
    const index = await realIndex();
    const pinned = /sha256: ([0-9a-f]{64})/.exec(index)![1]!;
    const wit = (await realWit()).replace('// P1.1', '// P1.1 (edited)');
    expect(await check(index, wit, false)).toEqual([
      `specs/p1/wit-interface.yaml:${at(index, pinned)}: wit.sha256: ${WIT} has sha256 ${sha256Hex(wit)}, the index pins ${pinned} (a changed WIT needs a new pin and version)`,
    ]);
  });

  it('reports the parser error at the token it names in the .wit file', async () => {
    const wit = (await realWit()).replace('    status: u16,', '    status: u17,');
    expect(await check(await realIndex(), wit)).toEqual([`${WIT}:${at(wit, 'status: u17', 'u17')}: WIT parser: type \`u17\` does not exist`]);
  });

  it('reports a syntax error (line 1 when the quoted token is not unique)', async () => {
    const wit = (await realWit()).replace('write: func(level: level, message: string);', 'write: func(level: level, message: string) result;');
    expect(await check(await realIndex(), wit)).toEqual([`${WIT}:1:1: WIT parser: expected ';', found keyword \`result\``]);
  });

  it('refuses worlds, interfaces, functions and types that differ from the index', async () => {
    const index = (await realIndex())
      .replace('    imports: [log, clock, types, http]\n    exports: [channel]', '    imports: [log, clock, types, http, workspace]\n    exports: [channel]')
      .replace('    functions: [write]', '    functions: [write, flush]')
      .replace('    types: [request, response]', '    types: [request]')
      .replace('  channel:\n    description: Exported by every channel\n    types: [message]\n    functions: [handle]\n', '');
    expect(await check(index, await realWit())).toEqual([
      'specs/p1/wit-interface.yaml:57:14: worlds.channel-world.imports: the index lists workspace, which the WIT world channel-world does not import',
      `specs/p1/wit-interface.yaml:32:16: interfaces.log.functions: the index lists flush, which log in ${WIT} does not declare`,
      `specs/p1/wit-interface.yaml:43:12: interfaces.http.types: ${WIT} declares response in http, which the index does not list`,
      `specs/p1/wit-interface.yaml:25:3: interfaces: ${WIT}:85:11 declares interface channel, which the index does not list`,
    ]);
  });

  it('refuses a world the WIT does not have, and a package version that is not the spec version', async () => {
    const index = (await realIndex()).replace('  channel-world:\n', '  chanel-world:\n').replace('package: clawos:host@1.0.0', 'package: clawos:host@1.1.0');
    expect(await check(index, await realWit())).toEqual([
      'specs/p1/wit-interface.yaml:22:12: wit.package clawos:host@1.1.0: its version must be the spec version 1.0.0',
      `specs/p1/wit-interface.yaml:59:3: worlds.chanel-world: ${WIT} has no world chanel-world`,
      `specs/p1/wit-interface.yaml:22:12: wit.package clawos:host@1.1.0: ${WIT} declares package clawos:host@1.0.0`,
      `specs/p1/wit-interface.yaml:55:3: worlds: ${WIT}:103:7 declares world channel-world, which the index does not list`,
    ]);
  });

  it('refuses a malformed pin (schema), with file:line:col', async () => {
    const index = (await realIndex()).replace(/sha256: [0-9a-f]{64}/, 'sha256: abc');
    expect(await check(index, await realWit(), false)).toEqual([
      `specs/p1/wit-interface.yaml:${at(index, 'sha256: abc', 'abc')}: wit.sha256: "abc" does not match ^[0-9a-f]{64}$`,
    ]);
  });
});

describe('outlineWit and locateWitError', () => {
  const text = `// comment: interface fake { x: func(); }
package a:b@1.2.3;

interface i {
  use t.{e};
  record r { type: u8 }
  type alias = u32;
  f: func(type: string) -> result<_, e>;
  resource res {
    method: func();
  }
}

world w {
  import i;
}
`;
  it('finds the package, interfaces with their functions and types, and worlds, with positions', () => {
    const o = outlineWit(text);
    expect(o.package).toEqual({ name: 'a:b@1.2.3', line: 2, col: 9 });
    const i = o.interfaces.get('i')!;
    expect([...o.interfaces.keys()]).toEqual(['i']);
    expect(i.functions).toEqual([{ name: 'f', line: 8, col: 3 }]);
    expect(i.types.map((t) => t.name)).toEqual(['r', 'alias', 'res']);
    expect([...o.worlds.keys()]).toEqual(['w']);
  });

  it('places a message on the one token it quotes, else on line 1', () => {
    expect(locateWitError('x.wit', text, 'type `alias` is odd')).toEqual({ file: 'x.wit', line: 7, col: 8 });
    // "func" occurs twice in code (the comment does not count): ambiguous.
    expect(locateWitError('x.wit', text, 'bad `func`')).toEqual({ file: 'x.wit', line: 1, col: 1 });
  });
});
