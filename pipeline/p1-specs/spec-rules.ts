/**
 * Rules of the P1 specs that a JSON Schema cannot express, checked by
 * spec-freeze on schema-valid documents: the eBPF struct layout (P1.3), the
 * ClawFS conventions (P1.4), the IPC protocol's codes and references (P1.7)
 * and the public API against the IPC protocol (P1.8). Each returns every
 * problem at a path inside the spec, so the caller can name file:line:col.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { yamlValue } from '../../lib/yaml-source.js';
import type { SourceLocation } from '../../lib/errors.js';

/** A problem found by a semantic check, at a path inside the spec document (or at `at` in another file). */
export interface SpecProblem {
  path: (string | number)[];
  message: string;
  /** Point at the key naming `path` rather than at its value. */
  key?: boolean;
  /** Set when the problem lies in another file than the spec (e.g. the .wit file an index names). */
  at?: SourceLocation;
}

export interface SpecCheckEnv {
  /** Absolute repository root: where files a spec names (ipc_spec, wit.file) are read from. */
  repoRoot: string;
}

// ---------------------------------------------------------------- P1.3

/** Size (= alignment) of the C fixed-width types on x86_64, aarch64 and the bpf target. */
export const C_PRIMITIVES: Readonly<Record<string, number>> = { u8: 1, i8: 1, char: 1, u16: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

interface EbpfField {
  name: string;
  type: string;
  len?: number;
  offset: number;
  enum?: string;
}
interface EbpfSpec {
  ring_buffer: { size_bytes: number; max_record_bytes: number };
  enums: Record<string, { type: string; values: Record<string, number> }>;
  structs: Record<string, { size: number; fields: EbpfField[] }>;
  events: { kind: string; struct: string }[];
}

export interface StructLayout {
  size: number;
  align: number;
  /** Computed offset of each field, in order. */
  offsets: number[];
}

const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;
const typeText = (f: { type: string; len?: number }) => (f.len !== undefined ? `${f.type}[${f.len}]` : f.type);

/** Range of a C integer type. */
function intRange(type: string): [bigint, bigint] {
  const bits = BigInt(C_PRIMITIVES[type]! * 8);
  return type.startsWith('u') ? [0n, (1n << bits) - 1n] : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
}

/**
 * P1.3: C layout with natural alignment and no implicit padding; declared
 * offsets and sizes equal the computed ones; enums fit their type; every event
 * starts with its header and fits the ring buffer record limit.
 */
export function checkEbpfEvents(spec: unknown): SpecProblem[] {
  const s = spec as EbpfSpec;
  const out: SpecProblem[] = [];
  const layouts = new Map<string, StructLayout | null>();

  for (const [name, e] of Object.entries(s.enums)) {
    const [lo, hi] = intRange(e.type);
    const seen = new Map<number, string>();
    for (const [k, v] of Object.entries(e.values)) {
      if (BigInt(v) < lo || BigInt(v) > hi) out.push({ path: ['enums', name, 'values', k], message: `enums.${name}.${k}: ${v} does not fit in ${e.type}` });
      const prev = seen.get(v);
      if (prev !== undefined) out.push({ path: ['enums', name, 'values', k], message: `enums.${name}: ${prev} and ${k} share the value ${v}` });
      else seen.set(v, k);
    }
  }

  // Layout of a struct, computed once; null when a field's type cannot be resolved.
  const layoutOf = (name: string, stack: string[]): StructLayout | null => {
    if (layouts.has(name)) return layouts.get(name)!;
    const st = s.structs[name]!;
    let cur = 0;
    let align = 1;
    const offsets: number[] = [];
    let ok = true;
    const names = new Set<string>();
    st.fields.forEach((f, i) => {
      const at = ['structs', name, 'fields', i];
      if (names.has(f.name)) out.push({ path: [...at, 'name'], message: `${name}: field ${f.name} appears twice` });
      names.add(f.name);
      let size: number;
      let a: number;
      const prim = C_PRIMITIVES[f.type];
      if (prim !== undefined) {
        size = prim;
        a = prim;
      } else if (s.structs[f.type] === undefined) {
        out.push({ path: [...at, 'type'], message: `${name}.${f.name}: type ${f.type} is neither a C fixed-width type nor a struct of structs` });
        ok = false;
        return;
      } else if (stack.includes(f.type)) {
        out.push({ path: [...at, 'type'], message: `${name}.${f.name}: struct ${f.type} contains itself (${[...stack, f.type].join(' -> ')})` });
        ok = false;
        return;
      } else {
        const inner = layoutOf(f.type, [...stack, f.type]);
        if (!inner) {
          ok = false;
          return;
        }
        size = inner.size;
        a = inner.align;
      }
      size *= f.len ?? 1;
      const aligned = roundUp(cur, a);
      if (aligned > cur) {
        out.push({
          path: [...at, 'offset'],
          message: `${name}: ${aligned - cur} byte(s) of implicit padding before ${f.name} (offset ${cur} to ${aligned}): add an explicit _padN field`,
        });
      }
      if (f.offset !== aligned) {
        out.push({ path: [...at, 'offset'], message: `${name}.${f.name}: offset ${f.offset} declared, the C layout puts it at ${aligned}` });
      }
      if (f.enum !== undefined) {
        const e = s.enums[f.enum];
        if (!e) out.push({ path: [...at, 'enum'], message: `${name}.${f.name}: enum ${f.enum} is not declared in enums` });
        else if (e.type !== f.type || f.len !== undefined) {
          out.push({ path: [...at, 'enum'], message: `${name}.${f.name}: enum ${f.enum} is ${e.type}, the field is ${typeText(f)}` });
        }
      }
      offsets.push(aligned);
      cur = aligned + size;
      align = Math.max(align, a);
    });
    if (!ok) {
      layouts.set(name, null);
      return null;
    }
    const size = roundUp(cur, align);
    if (size > cur) {
      const last = st.fields[st.fields.length - 1]!;
      out.push({
        path: ['structs', name, 'size'],
        message: `${name}: ${size - cur} byte(s) of implicit tail padding after ${last.name} (${cur} rounds up to ${size} for alignment ${align}): add an explicit _padN field`,
      });
    }
    if (st.size !== size) out.push({ path: ['structs', name, 'size'], message: `${name}: size ${st.size} declared, the C layout gives ${size}` });
    const l = { size, align, offsets };
    layouts.set(name, l);
    return l;
  };
  for (const name of Object.keys(s.structs)) layoutOf(name, [name]);

  const rb = s.ring_buffer;
  if ((rb.size_bytes & (rb.size_bytes - 1)) !== 0 || rb.size_bytes % 4096 !== 0) {
    out.push({
      path: ['ring_buffer', 'size_bytes'],
      message: `ring_buffer.size_bytes ${rb.size_bytes} is not a power of two and a multiple of the 4096-byte page (BPF_MAP_TYPE_RINGBUF needs both)`,
    });
  }

  const kinds = s.enums['event_kind'];
  if (!kinds) out.push({ path: ['enums'], message: 'enums: event_kind is missing (EventHeader.kind and the events list use it)' });
  const seenKinds = new Set<string>();
  s.events.forEach((ev, i) => {
    const at = ['events', i];
    if (kinds && kinds.values[ev.kind] === undefined) {
      out.push({ path: [...at, 'kind'], message: `events: kind ${ev.kind} is not a value of enums.event_kind` });
    }
    if (seenKinds.has(ev.kind)) out.push({ path: [...at, 'kind'], message: `events: kind ${ev.kind} appears twice` });
    seenKinds.add(ev.kind);
    const st = s.structs[ev.struct];
    if (!st) {
      out.push({ path: [...at, 'struct'], message: `events: ${ev.kind} carries ${ev.struct}, which is not a struct of structs` });
      return;
    }
    const first = st.fields[0];
    if (!first || first.name !== 'header' || first.type !== 'EventHeader' || first.len !== undefined || first.offset !== 0) {
      out.push({ path: ['structs', ev.struct, 'fields', 0], message: `${ev.struct}: an event struct starts with header: EventHeader at offset 0` });
    }
    const l = layouts.get(ev.struct);
    if (l && l.size > rb.max_record_bytes) {
      out.push({ path: [...at, 'struct'], message: `${ev.struct}: ${l.size} bytes exceed ring_buffer.max_record_bytes ${rb.max_record_bytes}` });
    }
  });
  if (kinds) {
    for (const k of Object.keys(kinds.values)) {
      if (!seenKinds.has(k)) out.push({ path: ['enums', 'event_kind', 'values', k], message: `event kind ${k} has no entry in events` });
    }
  }
  return out;
}

// ---------------------------------------------------------------- P1.4

interface ClawfsSpec {
  paths: { root: string; subtrees: Record<string, { path: string; owner: string }> };
  vector_index: { path: string };
  secrets: { key: { sealing: { fallback: string; argon2id?: unknown } } };
}

/** P1.4: subtree paths are <root>/<name>; the vector store lies in a subtree; a passphrase fallback has its KDF cost. */
export function checkClawfs(spec: unknown): SpecProblem[] {
  const s = spec as ClawfsSpec;
  const out: SpecProblem[] = [];
  for (const [name, t] of Object.entries(s.paths.subtrees)) {
    if (t.path !== `${s.paths.root}/${name}`) {
      out.push({ path: ['paths', 'subtrees', name, 'path'], message: `paths.subtrees.${name}: path ${t.path} is not ${s.paths.root}/${name}` });
    }
  }
  const vp = s.vector_index.path;
  const home = Object.entries(s.paths.subtrees).find(([, t]) => vp.startsWith(`${t.path}/`));
  if (!home) out.push({ path: ['vector_index', 'path'], message: `vector_index.path ${vp} lies in no subtree of paths.subtrees` });
  else if (home[1].owner !== 'fs-engineer') {
    out.push({ path: ['vector_index', 'path'], message: `vector_index.path ${vp} lies in ${home[0]}, owned by ${home[1].owner}, not fs-engineer (RULE-001)` });
  }
  const sealing = s.secrets.key.sealing;
  if (sealing.fallback === 'passphrase-argon2id' && sealing.argon2id === undefined) {
    out.push({ path: ['secrets', 'key', 'sealing'], message: 'secrets.key.sealing: fallback passphrase-argon2id needs its argon2id parameters' });
  }
  return out;
}

// ---------------------------------------------------------------- P1.7

interface IpcField {
  name: string;
  type: string;
  enum?: string[];
}
interface IpcMessage {
  name: string;
  kind: 'request' | 'response' | 'event';
  reply?: string;
  fields: IpcField[];
  errors?: string[];
}
interface IpcSpec {
  envelope: IpcField[];
  error_categories: Record<string, { min: number; max: number }>;
  error_codes: { code: number; name: string; category: string }[];
  messages: IpcMessage[];
}

const ERROR_MESSAGE_FIELDS: ReadonlyArray<[string, string]> = [
  ['code', 'u32'],
  ['name', 'string'],
  ['message', 'string'],
  ['retryable', 'bool'],
];

function duplicateFields(fields: IpcField[], where: string, at: (string | number)[], out: SpecProblem[]): void {
  const seen = new Set<string>();
  fields.forEach((f, i) => {
    if (seen.has(f.name)) out.push({ path: [...at, i, 'name'], message: `${where}: field ${f.name} appears twice` });
    seen.add(f.name);
    if (f.enum && f.type !== 'string') out.push({ path: [...at, i, 'enum'], message: `${where}.${f.name}: enum values need type string, not ${f.type}` });
  });
}

/** P1.7: unique names and codes, codes inside their category, replies and errors that exist. */
export function checkIpcProtocol(spec: unknown): SpecProblem[] {
  const s = spec as IpcSpec;
  const out: SpecProblem[] = [];
  duplicateFields(s.envelope, 'envelope', ['envelope'], out);

  const cats = Object.entries(s.error_categories);
  for (const [name, c] of cats) {
    if (c.min > c.max) out.push({ path: ['error_categories', name], message: `error_categories.${name}: min ${c.min} > max ${c.max}` });
  }
  for (let i = 0; i < cats.length; i++) {
    for (let j = 0; j < i; j++) {
      const [an, a] = cats[j]!;
      const [bn, b] = cats[i]!;
      if (a.min <= b.max && b.min <= a.max) {
        out.push({ path: ['error_categories', bn], message: `error_categories: ${bn} (${b.min}-${b.max}) overlaps ${an} (${a.min}-${a.max})` });
      }
    }
  }
  const codes = new Map<number, string>();
  const errorNames = new Set<string>();
  s.error_codes.forEach((e, i) => {
    const at = ['error_codes', i];
    const prev = codes.get(e.code);
    if (prev !== undefined) out.push({ path: [...at, 'code'], message: `error_codes: ${e.name} and ${prev} share the code ${e.code}` });
    else codes.set(e.code, e.name);
    if (errorNames.has(e.name)) out.push({ path: [...at, 'name'], message: `error_codes: ${e.name} appears twice` });
    errorNames.add(e.name);
    const cat = s.error_categories[e.category];
    if (!cat) {
      out.push({ path: [...at, 'category'], message: `error_codes: ${e.name} has category ${e.category}, which is not in error_categories` });
    } else if (e.code < cat.min || e.code > cat.max) {
      out.push({ path: [...at, 'code'], message: `error_codes: ${e.name} ${e.code} lies outside its category ${e.category} (${cat.min}-${cat.max})` });
    }
  });

  const byName = new Map<string, IpcMessage>();
  s.messages.forEach((m, i) => {
    if (byName.has(m.name)) out.push({ path: ['messages', i, 'name'], message: `messages: ${m.name} appears twice` });
    else byName.set(m.name, m);
  });
  s.messages.forEach((m, i) => {
    const at = ['messages', i];
    duplicateFields(m.fields, m.name, [...at, 'fields'], out);
    if (m.kind === 'request') {
      if (m.reply === undefined) out.push({ path: at, message: `${m.name}: a request names its reply` });
      else {
        const r = byName.get(m.reply);
        if (!r) out.push({ path: [...at, 'reply'], message: `${m.name}: reply ${m.reply} is not a message` });
        else if (r.kind !== 'response') out.push({ path: [...at, 'reply'], message: `${m.name}: reply ${m.reply} is a ${r.kind}, not a response` });
      }
    } else {
      if (m.reply !== undefined) out.push({ path: [...at, 'reply'], message: `${m.name}: a ${m.kind} has no reply (only requests do)` });
      if (m.errors !== undefined) out.push({ path: [...at, 'errors'], message: `${m.name}: a ${m.kind} lists no errors (only requests do)` });
    }
    (m.errors ?? []).forEach((e, j) => {
      if (!errorNames.has(e)) out.push({ path: [...at, 'errors', j], message: `${m.name}: error ${e} is not in error_codes` });
    });
  });
  const err = byName.get('error');
  if (!err || err.kind !== 'response') {
    out.push({ path: ['messages'], message: 'messages: the error response (code, name, message, retryable) is missing' });
  } else {
    const i = s.messages.indexOf(err);
    for (const [name, type] of ERROR_MESSAGE_FIELDS) {
      const f = err.fields.find((x) => x.name === name);
      if (!f || f.type !== type) out.push({ path: ['messages', i, 'fields'], message: `error: needs the field ${name} of type ${type}` });
    }
  }
  return out;
}

// ---------------------------------------------------------------- P1.8

const API_BUILTINS = new Set(['string', 'bool', 'u32', 'u64', 'i64', 'bytes']);

interface ApiField {
  name: string;
  type: string;
}
interface ApiSpec {
  ipc_spec: string;
  types: Record<string, { kind: 'string' | 'enum' | 'record'; pattern?: string; values?: string[]; fields?: ApiField[] }>;
  functions: { name: string; ipc: string; params: ApiField[]; returns: string; errors: string[] }[];
}

/** P1.8: types resolve, names are unique, and each function agrees with its P1.7 request. */
export async function checkPublicApi(spec: unknown, env: SpecCheckEnv): Promise<SpecProblem[]> {
  const s = spec as ApiSpec;
  const out: SpecProblem[] = [];
  const known = (t: string) => API_BUILTINS.has(t) || s.types[t] !== undefined;
  const checkFields = (fields: ApiField[], where: string, at: (string | number)[]) => {
    const seen = new Set<string>();
    fields.forEach((f, i) => {
      if (seen.has(f.name)) out.push({ path: [...at, i, 'name'], message: `${where}: ${f.name} appears twice` });
      seen.add(f.name);
      if (!known(f.type)) out.push({ path: [...at, i, 'type'], message: `${where}.${f.name}: type ${f.type} is neither built in nor in types` });
    });
  };

  for (const [name, t] of Object.entries(s.types)) {
    const at = ['types', name];
    const need = { enum: 'values', record: 'fields', string: null }[t.kind];
    for (const key of ['pattern', 'values', 'fields'] as const) {
      const allowed = key === need || (key === 'pattern' && t.kind === 'string');
      if (t[key] !== undefined && !allowed) out.push({ path: [...at, key], message: `types.${name}: kind ${t.kind} takes no ${key}` });
    }
    if (need && t[need as 'values' | 'fields'] === undefined) out.push({ path: at, message: `types.${name}: kind ${t.kind} needs ${need}` });
    if (t.pattern !== undefined) {
      try {
        new RegExp(t.pattern);
      } catch (err) {
        out.push({ path: [...at, 'pattern'], message: `types.${name}: pattern is not a regular expression: ${(err as Error).message}` });
      }
    }
    if (t.fields) checkFields(t.fields, `types.${name}`, [...at, 'fields']);
  }

  const fnNames = new Set<string>();
  s.functions.forEach((f, i) => {
    const at = ['functions', i];
    if (fnNames.has(f.name)) out.push({ path: [...at, 'name'], message: `functions: ${f.name} appears twice` });
    fnNames.add(f.name);
    checkFields(f.params, f.name, [...at, 'params']);
    if (!known(f.returns)) out.push({ path: [...at, 'returns'], message: `${f.name}: returns ${f.returns}, which is neither built in nor in types` });
  });

  // The functions ride on P1.7 requests: same errors, or the two specs drifted apart.
  let ipc: IpcSpec;
  try {
    ipc = yamlValue(await readFile(join(env.repoRoot, s.ipc_spec), 'utf8'), s.ipc_spec) as IpcSpec;
    if (!Array.isArray(ipc?.messages) || !Array.isArray(ipc?.error_codes)) throw new Error('no messages or error_codes');
  } catch (err) {
    out.push({ path: ['ipc_spec'], message: `ipc_spec: cannot read the IPC protocol ${s.ipc_spec}: ${(err as Error).message}` });
    return out;
  }
  const codes = new Set(ipc.error_codes.map((e) => e.name));
  s.functions.forEach((f, i) => {
    const at = ['functions', i];
    const m = ipc.messages.find((x) => x.name === f.ipc);
    if (!m || m.kind !== 'request') {
      out.push({ path: [...at, 'ipc'], message: `${f.name}: ipc ${f.ipc} is not a request message of ${s.ipc_spec}` });
      return;
    }
    const theirs = m.errors ?? [];
    f.errors.forEach((e, j) => {
      if (!codes.has(e)) out.push({ path: [...at, 'errors', j], message: `${f.name}: error ${e} is not an error code of ${s.ipc_spec}` });
      else if (!theirs.includes(e)) {
        out.push({ path: [...at, 'errors', j], message: `${f.name}: error ${e} is not among the errors ${f.ipc} may return in ${s.ipc_spec}` });
      }
    });
    const missing = theirs.filter((e) => !f.errors.includes(e));
    if (missing.length) out.push({ path: [...at, 'errors'], message: `${f.name}: ${f.ipc} may also return ${missing.join(', ')} (${s.ipc_spec}); list them` });
  });
  return out;
}
