import { describe, it, expect } from 'vitest';
import { readFile, readdir, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { specFreezeStep } from './spec-freeze.js';
import { checkCgroupPids, checkSpecText, semanticChecks, freezeRecordName, specFreezeDiagnostics, type FreezeRecord } from '../p1-specs/spec-check.js';
import { loadTasks } from '../catalog/load-tasks.js';
import { builtinSteps } from './index.js';
import type { StepContext } from '../catalog/step.js';
import { sha256Hex } from '../../lib/hash.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EPOCH = 1767225600; // 2026-01-01T00:00:00Z

const tmp = useTmpDirs();

function fakeCtx(repoRoot: string, buildDir: string, params: Record<string, unknown>): StepContext & { lines: string[] } {
  const lines: string[] = [];
  const outDir = join(buildDir, 'specs');
  return {
    taskId: 'C-01',
    instanceId: 'C-01',
    arch: null,
    params,
    repoRoot,
    buildDir,
    outDir,
    cacheDir: join(buildDir, 'cache'),
    buildPath: (rel: string) => resolve(buildDir, rel),
    sourceDateEpoch: EPOCH,
    jobs: 1,
    log: (l: string) => void lines.push(l),
    progress: () => {},
    run: () => Promise.reject(new Error('spec-freeze must not run children')),
    signal: new AbortController().signal,
    lines,
  };
}

/** A temp repo holding one spec text and the real schema for it. */
async function fakeRepo(name: string, specText: string): Promise<string> {
  const root = await tmp();
  await mkdir(join(root, 'specs', 'p1'), { recursive: true });
  await mkdir(join(root, 'specs', 'schemas', 'p1'), { recursive: true });
  await writeFile(join(root, 'specs', 'p1', `${name}.yaml`), specText);
  await copyFile(
    join(REPO, 'specs', 'schemas', 'p1', `${name}.schema.json`),
    join(root, 'specs', 'schemas', 'p1', `${name}.schema.json`),
  );
  return root;
}

const params = (name: string) => ({
  spec: `specs/p1/${name}.yaml`,
  schema: `specs/schemas/p1/${name}.schema.json`,
});

const CGROUP = (worker: string) => `spec_id: P1.5
version: 1.0.0
owner: infra
title: t
slices:
  clawos-system.slice: { memory_max: max, cpu_max: "max 100000", pids_max: max }
  clawos-agent.slice: { memory_max: 1073741824, cpu_max: "200000 100000", pids_max: 128 }
  clawos-wasm.slice: { memory_max: 1073741824, cpu_max: "100000 100000", pids_max: 64 }
  clawos-worker.slice:
${worker}`;

describe('spec-freeze', () => {
  it('declares its contract', () => {
    expect(specFreezeStep.name).toBe('spec-freeze');
    expect(specFreezeStep.toolPackages(null, {})).toEqual([]);
    expect(specFreezeStep.implicitInputs?.(null, params('clawfs'))).toEqual([
      'specs/p1/clawfs.yaml',
      'specs/schemas/p1/clawfs.schema.json',
    ]);
    expect([...semanticChecks.keys()]).toEqual(['P1.1', 'P1.2', 'P1.3', 'P1.4', 'P1.5', 'P1.7', 'P1.8']);
  });

  it('validates and freezes every real spec in specs/p1', async () => {
    const { parse } = await import('yaml');
    const names = (await readdir(join(REPO, 'specs', 'p1')))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''))
      .sort();
    const ids: Record<string, string> = {
      'wit-interface': 'P1.1',
      'seccomp-whitelist': 'P1.2',
      'ebpf-events': 'P1.3',
      clawfs: 'P1.4',
      'cgroup-quotas': 'P1.5',
      'apparmor-rules': 'P1.6',
      'ipc-protocol': 'P1.7',
      'public-api': 'P1.8',
    };
    // Every P1 deliverable of the plan, and nothing else.
    expect(names).toEqual(Object.keys(ids).sort());
    for (const name of names) {
      const build = await tmp();
      const ctx = fakeCtx(REPO, build, params(name));
      const out = await specFreezeStep.run(ctx);
      expect(out.status, out.message).toBe('PASS');
      const orig = await readFile(join(REPO, 'specs', 'p1', `${name}.yaml`));
      const copy = await readFile(join(ctx.outDir, `${name}.yaml`));
      expect(copy.equals(orig)).toBe(true);
      const rec = JSON.parse(await readFile(join(ctx.outDir, `${name}.freeze.json`), 'utf8')) as FreezeRecord;
      const spec = parse(orig.toString('utf8')) as { version: string; wit?: { file: string } };
      const attached = spec.wit ? [{ path: spec.wit.file, sha256: sha256Hex(await readFile(join(REPO, spec.wit.file))) }] : [];
      expect(rec).toEqual({
        spec_id: ids[name],
        version: spec.version,
        path: `specs/p1/${name}.yaml`,
        sha256: sha256Hex(orig),
        schema_sha256: sha256Hex(await readFile(join(REPO, 'specs', 'schemas', 'p1', `${name}.schema.json`))),
        frozen_at: '2026-01-01T00:00:00.000Z',
        ...(attached.length ? { attachments: attached } : {}),
      });
      expect(Object.keys(rec)).toEqual(['spec_id', 'version', 'path', 'sha256', 'schema_sha256', 'frozen_at', ...(attached.length ? ['attachments'] : [])]);
      expect(out.evidence).toEqual([
        { label: `frozen ${ids[name]}`, path: `specs/${name}.yaml`, sha256: sha256Hex(orig) },
        ...attached.map((a) => ({ label: `frozen ${ids[name]} clawos.wit`, path: 'specs/clawos.wit', sha256: a.sha256 })),
      ]);
      for (const a of attached) expect((await readFile(join(ctx.outDir, 'clawos.wit'))).equals(await readFile(join(REPO, a.path)))).toBe(true);
    }
  });

  it('validate: specFreezeDiagnostics checks every spec a spec-freeze task names, located', async () => {
    const { catalog } = await loadTasks({ repoRoot: REPO, stepNames: new Set(builtinSteps().keys()) });
    expect(await specFreezeDiagnostics(catalog.tasks.values(), REPO)).toEqual([]);
    // A broken copy of the repo's cgroup table, named by a fake task.
    const root = await fakeRepo('cgroup-quotas', CGROUP('    { memory_max: max, cpu_max: "max 100000", pids_max: 8, tokio_threads: 8, wasm_workers: 8, buffer: 8 }\n'));
    const task = (w: Record<string, unknown>) => ({
      spec: { task_id: 'C-06', uses: 'spec-freeze', with: w } as never,
      file: 'tasks/C-06.yaml',
      sha256: '',
      locate: (p: readonly (string | number)[]) => ({ file: 'tasks/C-06.yaml', line: p.length + 20, col: 3 }),
    });
    expect(await specFreezeDiagnostics([task(params('cgroup-quotas')), task({ spec: 'specs/p1/nope.yaml', schema: 'x.json' })], root)).toEqual([
      {
        file: 'specs/p1/cgroup-quotas.yaml',
        line: 10,
        col: 57,
        message: 'clawos-worker.slice: pids.max 8 < tokio threads 8 + WASM workers 8 + buffer 8 = 24',
      },
      {
        file: 'tasks/C-06.yaml',
        line: 22,
        col: 3,
        message: `specs/p1/nope.yaml: cannot read: ENOENT: no such file or directory, open '${join(root, 'specs/p1/nope.yaml')}'`,
      },
    ]);
  });

  it('checkSpecText (synchronous) refuses a spec whose check reads other files', async () => {
    const text = await readFile(join(REPO, 'specs/p1/public-api.yaml'), 'utf8');
    const schema = JSON.parse(await readFile(join(REPO, 'specs/schemas/p1/public-api.schema.json'), 'utf8')) as object;
    expect(() => checkSpecText(text, 'specs/p1/public-api.yaml', schema)).toThrow('checkSpecText: the P1.8 check reads other files; use checkSpec');
    const cg = await readFile(join(REPO, 'specs/p1/cgroup-quotas.yaml'), 'utf8');
    const cgSchema = JSON.parse(await readFile(join(REPO, 'specs/schemas/p1/cgroup-quotas.schema.json'), 'utf8')) as object;
    expect(checkSpecText(cg, 'specs/p1/cgroup-quotas.yaml', cgSchema).ok).toBe(true);
  });

  it('seccomp whitelist is the plan list exactly; aliases only translate listed names', async () => {
    const { parse } = await import('yaml');
    const spec = parse(await readFile(join(REPO, 'specs', 'p1', 'seccomp-whitelist.yaml'), 'utf8')) as {
      syscalls: Record<string, string[]>;
      aliases: Record<string, string[]>;
    };
    expect(Object.values(spec.syscalls).flat().join(' ')).toBe(
      'mmap munmap mprotect brk madvise read write open openat close stat fstat exit exit_group getpid futex clone clone3 ' +
        'socket connect recv send poll epoll_create1 epoll_ctl epoll_wait clock_gettime clock_nanosleep ' +
        'rt_sigaction rt_sigprocmask rt_sigreturn prctl getrandom eventfd2 pipe2',
    );
    const listed = new Set(Object.values(spec.syscalls).flat());
    for (const name of Object.keys(spec.aliases)) expect(listed.has(name), name).toBe(true);
  });

  it('fails on an unknown field with file:line:col, and lists every problem', async () => {
    const text = `spec_id: P1.2
version: 1.0.0
owner: security
title: t
default_action: allow
allow_exec: true
syscalls:
  memory: [mmap]
aliases: {}
extra_field: 1
`;
    const root = await fakeRepo('seccomp-whitelist', text);
    const build = await tmp();
    const out = await specFreezeStep.run(fakeCtx(root, build, params('seccomp-whitelist')));
    expect(out.status).toBe('FAIL');
    expect(out.reason).toBe('spec-invalid');
    expect(out.message.split('\n').sort()).toEqual(
      [
        'specs/p1/seccomp-whitelist.yaml:10:1: unknown field "extra_field"',
        'specs/p1/seccomp-whitelist.yaml:5:17: default_action: must be one of "kill_process", "errno", "log"',
      ].sort(),
    );
    expect(out.location).toMatchObject({ file: 'specs/p1/seccomp-whitelist.yaml' });
    // Nothing frozen.
    await expect(readdir(join(build, 'specs'))).rejects.toThrow();
  });

  it('reports a nested unknown field at its key', async () => {
    const root = await fakeRepo('cgroup-quotas', CGROUP('    { memory_max: max, cpu_max: "max 100000", pids_max: 96, tokio_threads: 8, wasm_workers: 8, buffer: 8, pid_max: 3 }\n'));
    const out = await specFreezeStep.run(fakeCtx(root, await tmp(), params('cgroup-quotas')));
    expect(out.status).toBe('FAIL');
    expect(out.message).toBe(
      'specs/p1/cgroup-quotas.yaml:10:107: unknown field "pid_max" in slices.clawos-worker.slice',
    );
  });

  it('reports YAML syntax errors with line and column', async () => {
    const root = await fakeRepo('clawfs', 'spec_id: P1.4\nversion: [1.0.0\n');
    const out = await specFreezeStep.run(fakeCtx(root, await tmp(), params('clawfs')));
    expect(out.status).toBe('FAIL');
    expect(out.reason).toBe('spec-invalid');
    expect(out.message).toMatch(/^specs\/p1\/clawfs\.yaml:\d+:\d+: /);
  });

  it('fails a cgroup table that breaks pids.max >= tokio + WASM + buffer, with the numbers', async () => {
    const worker = `    memory_max: 2147483648
    cpu_max: "400000 100000"
    pids_max: 64
    tokio_threads: 32
    wasm_workers: 32
    buffer: 8
`;
    const root = await fakeRepo('cgroup-quotas', CGROUP(worker));
    const out = await specFreezeStep.run(fakeCtx(root, await tmp(), params('cgroup-quotas')));
    expect(out.status).toBe('FAIL');
    expect(out.reason).toBe('spec-invalid');
    expect(out.message).toBe(
      'specs/p1/cgroup-quotas.yaml:12:15: clawos-worker.slice: pids.max 64 < tokio threads 32 + WASM workers 32 + buffer 8 = 72',
    );
    expect(out.location).toEqual({ file: 'specs/p1/cgroup-quotas.yaml', line: 12, col: 15 });
  });

  it('requires the rule inputs on the worker slice', async () => {
    const root = await fakeRepo('cgroup-quotas', CGROUP('    { memory_max: max, cpu_max: "max 100000", pids_max: 96 }\n'));
    const out = await specFreezeStep.run(fakeCtx(root, await tmp(), params('cgroup-quotas')));
    expect(out.status).toBe('FAIL');
    expect(out.message.split('\n')).toEqual([
      'specs/p1/cgroup-quotas.yaml:10:5: missing required field "tokio_threads" in slices.clawos-worker.slice',
      'specs/p1/cgroup-quotas.yaml:10:5: missing required field "wasm_workers" in slices.clawos-worker.slice',
      'specs/p1/cgroup-quotas.yaml:10:5: missing required field "buffer" in slices.clawos-worker.slice',
    ]);
  });

  it('checkCgroupPids accepts equality and "max"', () => {
    const slice = (p: number | 'max') => ({ slices: { 'x.slice': { pids_max: p, tokio_threads: 1, wasm_workers: 2, buffer: 3 } } });
    expect(checkCgroupPids(slice(6))).toEqual([]);
    expect(checkCgroupPids(slice('max'))).toEqual([]);
    expect(checkCgroupPids(slice(5))).toEqual([
      { path: ['slices', 'x.slice', 'pids_max'], message: 'x.slice: pids.max 5 < tokio threads 1 + WASM workers 2 + buffer 3 = 6' },
    ]);
  });

  it('freezing twice gives the same freeze.json', async () => {
    const buildA = await tmp();
    const buildB = await tmp();
    const ctxA = fakeCtx(REPO, buildA, params('cgroup-quotas'));
    const ctxB = fakeCtx(REPO, buildB, params('cgroup-quotas'));
    expect((await specFreezeStep.run(ctxA)).status).toBe('PASS');
    const first = await readFile(join(ctxA.outDir, freezeRecordName('cgroup-quotas.yaml')));
    expect((await specFreezeStep.run(ctxA)).status).toBe('PASS');
    expect((await specFreezeStep.run(ctxB)).status).toBe('PASS');
    const again = await readFile(join(ctxA.outDir, 'cgroup-quotas.freeze.json'));
    const other = await readFile(join(ctxB.outDir, 'cgroup-quotas.freeze.json'));
    expect(again.equals(first)).toBe(true);
    expect(other.equals(first)).toBe(true);
    // No temp files left behind by the atomic writes.
    expect((await readdir(ctxA.outDir)).sort()).toEqual(['cgroup-quotas.freeze.json', 'cgroup-quotas.yaml']);
  });

  it('rejects params that leave the repository', async () => {
    await expect(specFreezeStep.run(fakeCtx(REPO, await tmp(), { spec: '../x.yaml', schema: 'a.json' }))).rejects.toThrow(
      /inside the repository/,
    );
  });
});
