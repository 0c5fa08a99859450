// The P1.3, P1.4, P1.7 and P1.8 rules, run as spec-freeze runs them: each
// broken example is refused with file:line:col and the exact message.
import { describe, it, expect, afterEach } from 'vitest';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { checkSpec } from './spec-check.js';
import { checkEbpfEvents } from './spec-rules.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const cleanups: DirectoryResult[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await d.cleanup();
});

/** Check `text` as specs/p1/<name>.yaml against the real schema, in a temp repo holding `files` too. */
async function check(name: string, text: string, files: Record<string, string> = {}): Promise<string[]> {
  const d = await tmpDir({ unsafeCleanup: true });
  cleanups.push(d);
  for (const [rel, body] of Object.entries(files)) {
    await mkdir(dirname(join(d.path, rel)), { recursive: true });
    await writeFile(join(d.path, rel), body);
  }
  await mkdir(join(d.path, 'specs', 'schemas', 'p1'), { recursive: true });
  const schemaPath = join(d.path, 'specs', 'schemas', 'p1', `${name}.schema.json`);
  await copyFile(join(REPO, 'specs', 'schemas', 'p1', `${name}.schema.json`), schemaPath);
  const r = await checkSpec(text, `specs/p1/${name}.yaml`, JSON.parse(await readFile(schemaPath, 'utf8')) as object, { repoRoot: d.path });
  return r.ok ? [] : r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
}

const real = (name: string) => readFile(join(REPO, 'specs', 'p1', `${name}.yaml`), 'utf8');

/** "line:col" of `token` on the first line containing `line` (1-based), `token` defaulting to `line`. */
function at(text: string, line: string, token = line): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(line));
  if (i < 0) throw new Error(`fixture has no line with ${line}`);
  const col = lines[i]!.indexOf(token, lines[i]!.indexOf(line) >= 0 && token !== line ? 0 : 0);
  if (col < 0) throw new Error(`line ${i + 1} has no ${token}`);
  return `${i + 1}:${col + 1}`;
}

// ------------------------------------------------------------------ P1.3

const EBPF = (ping: string) => `spec_id: P1.3
version: 1.0.0
owner: ebpf
title: t
abi: { byte_order: little, layout: c, implicit_padding: forbidden }
ring_buffer: { map_name: EV, size_bytes: 4096, max_record_bytes: 64 }
enums:
  event_kind: { type: u32, values: { ping: 1 } }
structs:
  EventHeader:
    size: 16
    fields:
      - { name: kind, type: u32, offset: 0, enum: event_kind }
      - { name: size, type: u32, offset: 4 }
      - { name: ts_ns, type: u64, offset: 8 }
  PingEvent:
${ping}events:
  - { kind: ping, struct: PingEvent, producers: [B-02], consumers: [ebpf] }
`;
const PING_OK = `    size: 24
    fields:
      - { name: header, type: EventHeader, offset: 0 }
      - { name: seq, type: u32, offset: 16 }
      - { name: _pad0, type: u8, len: 4, offset: 20 }
`;

describe('P1.3 eBPF event structs', () => {
  it('the real spec and the small example pass; the layout is what a C compiler makes', async () => {
    expect(await check('ebpf-events', await real('ebpf-events'))).toEqual([]);
    expect(await check('ebpf-events', EBPF(PING_OK))).toEqual([]);
  });

  it('refuses a type that is not a C fixed-width type (schema)', async () => {
    const text = EBPF(PING_OK.replace('type: u32, offset: 16', 'type: u65, offset: 16'));
    expect(await check('ebpf-events', text)).toEqual([
      `specs/p1/ebpf-events.yaml:${at(text, 'u65')}: structs.PingEvent.fields.1.type: "u65" does not match ^(u8|u16|u32|u64|i8|i16|i32|i64|char|[A-Z][A-Za-z0-9]*)$`,
    ]);
  });

  it('refuses implicit padding inside and at the tail, and wrong offsets and sizes, with the numbers', async () => {
    const ping = `    size: 24
    fields:
      - { name: header, type: EventHeader, offset: 0 }
      - { name: flag, type: u8, offset: 16 }
      - { name: seq, type: u32, offset: 17 }
`;
    const text = EBPF(ping);
    expect(await check('ebpf-events', text)).toEqual([
      `specs/p1/ebpf-events.yaml:${at(text, 'offset: 17', '17')}: PingEvent: 3 byte(s) of implicit padding before seq (offset 17 to 20): add an explicit _padN field`,
      `specs/p1/ebpf-events.yaml:${at(text, 'offset: 17', '17')}: PingEvent.seq: offset 17 declared, the C layout puts it at 20`,
    ]);
  });

  it('refuses tail padding and a size that is not the computed one', async () => {
    const ping = `    size: 20
    fields:
      - { name: header, type: EventHeader, offset: 0 }
      - { name: seq, type: u32, offset: 16 }
`;
    const text = EBPF(ping);
    const sizeAt = at(text, '    size: 20', '20');
    expect(await check('ebpf-events', text)).toEqual([
      `specs/p1/ebpf-events.yaml:${sizeAt}: PingEvent: 4 byte(s) of implicit tail padding after seq (20 rounds up to 24 for alignment 8): add an explicit _padN field`,
      `specs/p1/ebpf-events.yaml:${sizeAt}: PingEvent: size 20 declared, the C layout gives 24`,
    ]);
  });

  it('refuses an event without its header, an enum of another width, a kind with no event and an unknown struct', async () => {
    const ping = `    size: 8
    fields:
      - { name: seq, type: u64, offset: 0, enum: event_kind }
`;
    const text = EBPF(ping)
      .replace('values: { ping: 1 }', 'values: { ping: 1, pong: 2 }')
      .replace('  - { kind: ping, struct: PingEvent', '  - { kind: ping, struct: PongEvent, producers: [B-02], consumers: [ebpf] }\n  - { kind: ping, struct: PingEvent');
    expect(await check('ebpf-events', text)).toEqual([
      `specs/p1/ebpf-events.yaml:${at(text, 'name: seq, type: u64', 'event_kind')}: PingEvent.seq: enum event_kind is u32, the field is u64`,
      `specs/p1/ebpf-events.yaml:${at(text, 'PongEvent')}: events: ping carries PongEvent, which is not a struct of structs`,
      `specs/p1/ebpf-events.yaml:${at(text, 'struct: PingEvent', 'ping')}: events: kind ping appears twice`,
      `specs/p1/ebpf-events.yaml:${at(text, 'name: seq, type: u64', '{')}: PingEvent: an event struct starts with header: EventHeader at offset 0`,
      `specs/p1/ebpf-events.yaml:${at(text, 'pong: 2', '2 }')}: event kind pong has no entry in events`,
    ]);
  });

  it('computes nested layouts and arrays, and refuses a struct that contains itself', () => {
    const spec = {
      ring_buffer: { size_bytes: 4096, max_record_bytes: 512 },
      enums: { event_kind: { type: 'u32', values: { a: 1 } } },
      structs: {
        EventHeader: { size: 8, fields: [{ name: 'ts', type: 'u64', offset: 0 }] },
        Inner: { size: 6, fields: [{ name: 'c', type: 'char', len: 3, offset: 0 }, { name: '_pad0', type: 'u8', len: 1, offset: 3 }, { name: 'w', type: 'u16', offset: 4 }] },
        A: { size: 24, fields: [{ name: 'header', type: 'EventHeader', offset: 0 }, { name: 'i', type: 'Inner', len: 2, offset: 8 }, { name: '_pad0', type: 'u8', len: 4, offset: 20 }] },
        Loop: { size: 8, fields: [{ name: 'self', type: 'Loop', offset: 0 }] },
      },
      events: [{ kind: 'a', struct: 'A' }],
    };
    expect(checkEbpfEvents(spec)).toEqual([
      { path: ['structs', 'Loop', 'fields', 0, 'type'], message: 'Loop.self: struct Loop contains itself (Loop -> Loop)' },
    ]);
  });

  it('refuses a ring buffer size the kernel refuses and an enum value out of range', () => {
    const spec = {
      ring_buffer: { size_bytes: 6000, max_record_bytes: 512 },
      enums: { event_kind: { type: 'u8', values: { a: 1, b: 300, c: 1 } } },
      structs: { EventHeader: { size: 1, fields: [{ name: 'k', type: 'u8', offset: 0 }] } },
      events: [],
    };
    expect(checkEbpfEvents(spec).map((p) => p.message)).toEqual([
      'enums.event_kind.b: 300 does not fit in u8',
      'enums.event_kind: a and c share the value 1',
      'ring_buffer.size_bytes 6000 is not a power of two and a multiple of the 4096-byte page (BPF_MAP_TYPE_RINGBUF needs both)',
      'event kind a has no entry in events',
      'event kind b has no entry in events',
      'event kind c has no entry in events',
    ]);
  });

  it('the real AnomalyEvent is 224 bytes with its detail at 96', async () => {
    const { parse } = await import('yaml');
    const spec = parse(await real('ebpf-events')) as { structs: Record<string, { size: number; fields: { name: string; offset: number }[] }> };
    expect(spec.structs['AnomalyEvent']!.size).toBe(224);
    expect(spec.structs['AnomalyEvent']!.fields.find((f) => f.name === 'detail')!.offset).toBe(96);
  });
});

// ------------------------------------------------------------------ P1.7

describe('P1.7 IPC protocol', () => {
  it('the real spec passes', async () => {
    expect(await check('ipc-protocol', await real('ipc-protocol'))).toEqual([]);
  });

  it('refuses an unknown message kind (schema)', async () => {
    const text = (await real('ipc-protocol')).replace('  - name: anomaly\n    kind: event', '  - name: anomaly\n    kind: notify');
    expect(await check('ipc-protocol', text)).toEqual([
      `specs/p1/ipc-protocol.yaml:${at(text, 'notify')}: messages.11.kind: must be one of "request", "response", "event"`,
    ]);
  });

  it('refuses a shared code, a code outside its category, an unknown error and a reply that is not a response', async () => {
    const text = (await real('ipc-protocol'))
      .replace('{ code: 1001, name: frame_too_large', '{ code: 1000, name: frame_too_large')
      .replace('{ code: 3004, name: busy, category: resource', '{ code: 3004, name: busy, category: auth')
      .replace('errors: [unauthenticated, not_found]', 'errors: [unauthenticated, not_founds]')
      .replace('    reply: heartbeat.ack', '    reply: heartbeat');
    expect(await check('ipc-protocol', text)).toEqual([
      `specs/p1/ipc-protocol.yaml:${at(text, '1000, name: frame_too_large')}: error_codes: frame_too_large and bad_frame share the code 1000`,
      `specs/p1/ipc-protocol.yaml:${at(text, '3004, name: busy')}: error_codes: busy 3004 lies outside its category auth (2000-2999)`,
      `specs/p1/ipc-protocol.yaml:${at(text, 'not_founds')}: task.status: error not_founds is not in error_codes`,
      `specs/p1/ipc-protocol.yaml:${at(text, '    reply: heartbeat', 'heartbeat')}: heartbeat: reply heartbeat is a request, not a response`,
    ]);
  });

  it('refuses a response with errors and a missing error response', async () => {
    const text = (await real('ipc-protocol'))
      .replace('  - name: welcome\n    kind: response\n', '  - name: welcome\n    kind: response\n    errors: [internal]\n')
      .replace('  - name: error\n', '  - name: failure\n');
    expect(await check('ipc-protocol', text)).toEqual([
      `specs/p1/ipc-protocol.yaml:${at(text, '[internal]')}: welcome: a response lists no errors (only requests do)`,
      `specs/p1/ipc-protocol.yaml:${at(text, '  - name: hello', '- name')}: messages: the error response (code, name, message, retryable) is missing`,
    ]);
  });
});

// ------------------------------------------------------------------ P1.8

describe('P1.8 public API', () => {
  const withIpc = async () => ({ 'specs/p1/ipc-protocol.yaml': await real('ipc-protocol') });

  it('the real spec passes against the real IPC protocol', async () => {
    expect(await check('public-api', await real('public-api'), await withIpc())).toEqual([]);
  });

  it('refuses an unknown access mode (schema)', async () => {
    const text = (await real('public-api')).replace('access: read-write, description: the P1.7', 'access: write, description: the P1.7');
    expect(await check('public-api', text, await withIpc())).toEqual([
      `specs/p1/public-api.yaml:${at(text, 'write, description: the P1.7')}: files.0.access: must be one of "read", "read-write"`,
    ]);
  });

  it('refuses unknown types, a non-request ipc, and errors that drifted from the IPC protocol', async () => {
    const text = (await real('public-api'))
      .replace('returns: TaskStatus\n    errors: [unauthenticated, not_found]', 'returns: TaskStatuz\n    errors: [unauthenticated, not_found, vetoed]')
      .replace('ipc: task.cancel', 'ipc: task.state')
      .replace('errors: [unauthenticated, invalid_body, forbidden, not_found, timeout, tool_failed, sandbox_violation, quota_exceeded]', 'errors: [unauthenticated, invalid_body, forbidden, not_found, timeout, tool_failed, quota_exceeded, no_such]');
    expect(await check('public-api', text, await withIpc())).toEqual([
      `specs/p1/public-api.yaml:${at(text, 'TaskStatuz')}: task_status: returns TaskStatuz, which is neither built in nor in types`,
      `specs/p1/public-api.yaml:${at(text, 'not_found, vetoed]', 'vetoed')}: task_status: error vetoed is not among the errors task.status may return in specs/p1/ipc-protocol.yaml`,
      `specs/p1/public-api.yaml:${at(text, 'task.state')}: cancel_task: ipc task.state is not a request message of specs/p1/ipc-protocol.yaml`,
      `specs/p1/public-api.yaml:${at(text, 'no_such')}: invoke_tool: error no_such is not an error code of specs/p1/ipc-protocol.yaml`,
      `specs/p1/public-api.yaml:${at(text, 'no_such]', '[')}: invoke_tool: tool.invoke may also return sandbox_violation (specs/p1/ipc-protocol.yaml); list them`,
    ]);
  });

  it('names the IPC spec when it cannot be read', async () => {
    const text = await real('public-api');
    const got = await check('public-api', text);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(
      new RegExp(`^specs/p1/public-api\\.yaml:${at(text, 'ipc_spec:', 'specs/')}: ipc_spec: cannot read the IPC protocol specs/p1/ipc-protocol\\.yaml: ENOENT: no such file or directory`),
    );
  });

  it('refuses fields of another kind of type, and an unknown field (schema)', async () => {
    const base = await real('public-api');
    const wrongKind = base.replace('    values: [queued, running, done, failed, cancelled]', '    values: [queued, running, done, failed, cancelled]\n    fields: [{ name: a, type: u32 }]');
    expect(await check('public-api', wrongKind, await withIpc())).toEqual([
      `specs/p1/public-api.yaml:${at(wrongKind, 'fields: [{ name: a', '[')}: types.TaskState: kind enum takes no fields`,
    ]);
    const unknown = base.replace('    kind: record\n    fields:\n      - { name: output', '    kind: record\n    fieldz:\n      - { name: output');
    expect(await check('public-api', unknown, await withIpc())).toEqual([
      `specs/p1/public-api.yaml:${at(unknown, 'fieldz')}: unknown field "fieldz" in types.ToolResult`,
    ]);
  });
});

// ------------------------------------------------------------------ P1.4

describe('P1.4 ClawFS', () => {
  it('the real spec passes and covers the plan: paths, secrets, vector dimension, TPM fallback', async () => {
    const text = await real('clawfs');
    expect(await check('clawfs', text)).toEqual([]);
    const { parse } = await import('yaml');
    const spec = parse(text) as { vector_index: { dimension: number }; secrets: { key: { sealing: { primary: string; fallback: string; on_failure: string } } } };
    expect(spec.vector_index.dimension).toBe(1536);
    expect(spec.secrets.key.sealing).toMatchObject({ primary: 'tpm2', fallback: 'passphrase-argon2id', on_failure: 'refuse' });
  });

  it('refuses a vector dimension the plan does not allow (schema)', async () => {
    const text = (await real('clawfs')).replace('dimension: 1536', 'dimension: 768');
    expect(await check('clawfs', text)).toEqual([`specs/p1/clawfs.yaml:${at(text, '768')}: vector_index.dimension: must be one of 1536, 3072`]);
  });

  it('refuses a store outside the index subtree, a misplaced subtree and a passphrase fallback without its KDF cost', async () => {
    const text = (await real('clawfs'))
      .replace('path: /clawfs/index/memory.db', 'path: /clawfs/workspace/memory.db')
      .replace('path: /clawfs/tools\n', 'path: /clawfs/tool\n')
      .replace('      argon2id: { memory_kib: 65536, iterations: 3, parallelism: 1 }\n', '');
    expect(await check('clawfs', text)).toEqual([
      `specs/p1/clawfs.yaml:${at(text, 'path: /clawfs/tool', '/clawfs/tool')}: paths.subtrees.tools: path /clawfs/tool is not /clawfs/tools`,
      `specs/p1/clawfs.yaml:${at(text, '/clawfs/workspace/memory.db')}: vector_index.path /clawfs/workspace/memory.db lies in workspace, owned by core-dev, not fs-engineer (RULE-001)`,
      `specs/p1/clawfs.yaml:${at(text, 'primary: tpm2')}: secrets.key.sealing: fallback passphrase-argon2id needs its argon2id parameters`,
    ]);
  });
});
