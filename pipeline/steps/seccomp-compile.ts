/**
 * C-08: compile the frozen P1.2 whitelist into a seccomp-BPF filter for one
 * arch, with the syscall numbers of the kernel source tree A-01 built, and
 * build the static loader for that arch.
 *
 * Outputs (in <outDir>/seccomp/):
 *   seccomp-filter.bpf    struct sock_filter[] in the target's byte order
 *   seccomp-filter.json   what the filter allows and why, numbers, tables' sha256, disassembly
 *   seccomp-filter.env    the numbers the guest check needs (busybox sh sources it)
 *   clawos-seccomp-exec   the static loader
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm } from 'node:fs/promises';
import { machine } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import { checkSpecText, freezeRecordName, type FreezeRecord } from '../p1-specs/spec-check.js';
import { formatDiagnostic, parseYaml } from '../../lib/yaml-source.js';
import { hex32, parseHex32, seccompOf, tableAlternatives, tableFiles, tableInTree, type SeccompArch, type SyscallTableSpec } from '../security/seccomp-arch.js';
import { actionValue, assembleFilter, checkFilterStructure, disassemble, encodeFilter, type DefaultAction } from '../security/seccomp-bpf.js';
import { LOADER_NAME, elfMachine, loaderCompileArgv, loaderCompileEnv, loaderCompileRecord } from '../security/seccomp-loader.js';
import { readSyscallTable, type SyscallTable } from '../security/seccomp-tables.js';
import { resolveWhitelist, type SeccompWhitelist } from '../security/seccomp-whitelist.js';

export const FILTER_FILE = 'seccomp-filter.bpf';
export const DESCRIPTION_FILE = 'seccomp-filter.json';
export const ENV_FILE = 'seccomp-filter.env';
export const OUT_SUBDIR = 'seccomp';

/** What the guest's probe of a denied syscall must print for each default action. */
export function deniedExpectation(a: DefaultAction): string {
  return a === 'kill_process' ? 'killed SIGSYS' : a === 'errno' ? 'errno EPERM' : 'allowed';
}

export interface CompileParams {
  /** Build-relative frozen copy of the whitelist (C-01's output); its freeze record sits next to it. */
  whitelist: string;
  /** Repo-relative JSON Schema of P1.2. */
  schema: string;
  /** Build-relative kernel build dir (A-01's outDir): build-info.json names the source tree. */
  kernelDir: string;
  /** Repo-relative C source of the loader. */
  loader: string;
  /** The syscalls the guest check probes: one the filter must allow, one it must deny. */
  probe: { allowed: string; denied: string };
}

export function compileParams(p: Record<string, unknown>): CompileParams | string {
  const known = ['whitelist', 'schema', 'kernel_dir', 'loader', 'probe'];
  const unknown = Object.keys(p).filter((k) => !known.includes(k));
  if (unknown.length) return `seccomp-compile: unknown parameter '${unknown[0]}' (known: ${known.join(', ')})`;
  for (const k of ['whitelist', 'schema', 'kernel_dir', 'loader']) {
    if (typeof p[k] !== 'string' || p[k] === '') return `seccomp-compile: parameter '${k}' must be a non-empty path`;
  }
  const probe = p['probe'] as Record<string, unknown> | undefined;
  const name = /^[a-z_][a-z0-9_]*$/;
  if (!probe || typeof probe.allowed !== 'string' || typeof probe.denied !== 'string' || !name.test(probe.allowed) || !name.test(probe.denied)) {
    return "seccomp-compile: parameter 'probe' must be { allowed: SYSCALL, denied: SYSCALL }";
  }
  return {
    whitelist: p['whitelist'] as string,
    schema: p['schema'] as string,
    kernelDir: p['kernel_dir'] as string,
    loader: p['loader'] as string,
    probe: { allowed: probe.allowed, denied: probe.denied },
  };
}

interface KernelSourceRef {
  tree: string;
  tarball: string | null;
  sha256: string;
}

/** The source tree A-01 built, from its build-info.json. */
async function kernelSourceOf(ctx: StepContext, kernelDir: string): Promise<KernelSourceRef | Outcome> {
  const infoPath = join(ctx.buildPath(kernelDir), 'build-info.json');
  let info: { source?: { srcDir?: unknown; sha256?: unknown; tarball?: unknown } };
  try {
    info = JSON.parse(await readFile(infoPath, 'utf8')) as typeof info;
  } catch {
    return fail('output-missing', `seccomp-compile: ${relative(ctx.buildDir, infoPath)} is missing or not JSON: the kernel build (A-01) did not record its source`);
  }
  const s = info.source;
  if (!s || typeof s.srcDir !== 'string' || typeof s.sha256 !== 'string') {
    return fail('output-missing', `seccomp-compile: ${relative(ctx.buildDir, infoPath)} names no source tree (source.srcDir, source.sha256)`);
  }
  return { tree: s.srcDir, sha256: s.sha256, tarball: typeof s.tarball === 'string' ? s.tarball : null };
}

/**
 * The table files: from the tree A-01 built in, or, when that cache dir is
 * gone, unpacked from the same tarball after checking its sha256. The first
 * of the arch's table alternatives whose files are all there is the one read
 * (Linux 6.11 moved arm64's numbers from asm-generic/unistd.h to a .tbl file).
 */
async function tableTree(ctx: StepContext, src: KernelSourceRef, sec: SeccompArch): Promise<{ tree: string; how: string; table: SyscallTableSpec } | Outcome> {
  const alternatives = tableAlternatives(sec);
  const inTree = (tree: string) => tableInTree(sec, tree);
  const built = inTree(src.tree);
  if (built) return { tree: src.tree, how: 'kernel build tree', table: built };
  const wanted = alternatives.map((t) => tableFiles(t).join(' + ')).join(', or ');
  if (!src.tarball || !existsSync(src.tarball)) {
    return fail('output-missing', `seccomp-compile: the kernel source tree ${src.tree} has no ${wanted}, and its tarball ${src.tarball ?? '(none recorded)'} is not there`);
  }
  const actual = await sha256File(src.tarball);
  if (actual !== src.sha256) {
    return fail('source-mismatch', `seccomp-compile: ${src.tarball}: sha256 ${actual}, but the kernel was built from ${src.sha256}`);
  }
  const root = join(ctx.cacheDir, 'seccomp-tables', src.sha256.slice(0, 16));
  const done = async () => {
    const top = existsSync(root) ? (await readdir(root)).filter((d) => !d.startsWith('.')) : [];
    const t = top.length === 1 ? join(root, top[0]!) : null;
    const table = t ? inTree(t) : undefined;
    return t && table ? { tree: t, how: `unpacked from ${src.tarball}`, table } : null;
  };
  const have = await done();
  if (have) return have;
  await mkdir(dirname(root), { recursive: true });
  const tried: string[] = [];
  for (const alt of alternatives) {
    const need = tableFiles(alt);
    const tmp = await mkdtemp(`${root}.tmp-`);
    try {
      ctx.progress('unpacking the syscall tables');
      // Members by pattern: the tarball's top directory name is not known here.
      const r = await ctx.run(['tar', '-xf', src.tarball, '-C', tmp, '--wildcards', ...need.map((f) => `*/${f}`)], { signal: ctx.signal, tailLines: 20 });
      if (!r.ok) {
        tried.push(`${need.join(', ')}:\n${r.tail.join('\n')}`);
        continue;
      }
      await rm(root, { recursive: true, force: true });
      await rename(tmp, root);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    const t = await done();
    if (t) return t;
  }
  if (tried.length) return fail('exit-non-zero', `seccomp-compile: unpacking the syscall table from ${src.tarball} failed: ${tried.join('\n')}`);
  return fail('output-missing', `seccomp-compile: ${src.tarball} has no ${wanted} under one top directory`);
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const isOutcome = (x: unknown): x is Outcome => !!x && typeof x === 'object' && 'status' in x;

export async function runSeccompCompile(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'seccomp-compile builds for one architecture; give the task per_arch: true');
  const sec = seccompOf(arch);
  if (!sec) return fail('spec-invalid', `seccomp-compile: specs/arch/${arch.name}.yaml has no seccomp block`);
  const auditArch = parseHex32(sec.audit_arch);
  const x32Bit = sec.x32_bit === undefined ? undefined : parseHex32(sec.x32_bit);
  if (auditArch === null || x32Bit === null) return fail('spec-invalid', `seccomp-compile: specs/arch/${arch.name}.yaml: seccomp.audit_arch/x32_bit must be 0x… numbers`);
  const params = compileParams(ctx.params);
  if (typeof params === 'string') return fail('spec-invalid', params);
  const out = join(ctx.outDir, OUT_SUBDIR);
  // A failed run must not leave the previous filter looking current.
  await rm(out, { recursive: true, force: true });

  // ---- the frozen whitelist: the copy C-01 froze, re-checked against its record and the schema
  const copyAbs = ctx.buildPath(params.whitelist);
  const recordAbs = join(dirname(copyAbs), freezeRecordName(copyAbs));
  let record: FreezeRecord;
  let specBytes: Buffer;
  try {
    record = JSON.parse(await readFile(recordAbs, 'utf8')) as FreezeRecord;
    specBytes = await readFile(copyAbs);
  } catch {
    return fail('output-missing', `seccomp-compile: ${params.whitelist} or its freeze record ${relative(ctx.buildDir, recordAbs)} is missing: the whitelist is not frozen (C-01)`);
  }
  const specSha = sha256Hex(specBytes);
  if (specSha !== record.sha256) {
    return fail('validation-failed', `seccomp-compile: ${params.whitelist} has sha256 ${specSha}, its freeze record says ${record.sha256}`);
  }
  const schemaText = await readFile(join(ctx.repoRoot, params.schema), 'utf8').catch(() => null);
  if (schemaText === null) return fail('spec-invalid', `seccomp-compile: ${params.schema} not found in the repository`);
  let schema: object;
  try {
    schema = JSON.parse(schemaText) as object;
  } catch (err) {
    return fail('spec-invalid', `seccomp-compile: ${params.schema}: not JSON: ${(err as Error).message}`);
  }
  // Diagnostics name the repository file the copy was frozen from: same bytes, same lines.
  const checked = await checkSpecText(specBytes.toString('utf8'), record.path, schema, { repoRoot: ctx.repoRoot });
  if (!checked.ok) {
    const lines = checked.problems.map(formatDiagnostic);
    const first = checked.problems[0]!;
    return fail('spec-invalid', lines.join('\n'), { location: { file: first.file, line: first.line, col: first.col }, data: { problems: checked.problems } });
  }
  const spec = checked.value as unknown as SeccompWhitelist;
  const located = parseYaml(specBytes.toString('utf8'), record.path);

  // ---- the syscall numbers of the kernel being built
  ctx.progress('reading the syscall table');
  const src = await kernelSourceOf(ctx, params.kernelDir);
  if (isOutcome(src)) return src;
  const where = await tableTree(ctx, src, sec);
  if (isOutcome(where)) return where;
  const tr = await readSyscallTable(where.tree, where.table);
  if (!tr.ok) return fail('validation-failed', `seccomp-compile: the ${arch.name} syscall table cannot be read:\n${tr.problems.join('\n')}`);
  const table: SyscallTable = tr.table;
  ctx.log(`${arch.name} syscall numbers: ${table.files.map((f) => `${f.path} sha256 ${f.sha256}`).join(', ')} (${where.how}: ${where.tree})`);

  // ---- every listed name must be a syscall here, or be aliased explicitly
  const res = resolveWhitelist(spec, table.numbers, arch.name);
  if (res.problems.length) {
    const diags = res.problems.map((p) => ({ ...located.locate(p.path), message: p.message }));
    const lines = diags.map(formatDiagnostic);
    for (const l of lines) ctx.log(l);
    const first = diags[0]!;
    return fail('spec-invalid', lines.join('\n'), { location: { file: first.file, line: first.line, col: first.col }, data: { problems: diags } });
  }
  const allowedNames = new Set(res.allowed.map((a) => a.name));
  const allowedNr = table.numbers.get(params.probe.allowed);
  const deniedNr = table.numbers.get(params.probe.denied);
  if (allowedNr === undefined || !allowedNames.has(params.probe.allowed)) {
    return fail('spec-invalid', `seccomp-compile: probe.allowed ${params.probe.allowed} is not allowed by the ${arch.name} filter`);
  }
  if (deniedNr === undefined || allowedNames.has(params.probe.denied)) {
    return fail('spec-invalid', `seccomp-compile: probe.denied ${params.probe.denied} must be a ${arch.name} syscall the filter does not allow`);
  }

  // ---- the filter, checked by running it before it is written
  const filterIn = { auditArch, x32Bit, allow: res.allowed.map((a) => a.nr), defaultAction: spec.default_action };
  const prog = assembleFilter(filterIn);
  const structure = checkFilterStructure(prog, filterIn);
  if (!structure.ok) return fail('validation-failed', `seccomp-compile: the assembled filter is wrong:\n${structure.problems.slice(0, 20).join('\n')}`);
  const bytes = encodeFilter(prog, sec.byte_order);

  // ---- the loader
  ctx.progress(`compiling ${LOADER_NAME}`);
  const loaderSrc = join(ctx.repoRoot, params.loader);
  if (!existsSync(loaderSrc)) return fail('spec-invalid', `seccomp-compile: loader source ${params.loader} not found in the repository`);
  await mkdir(out, { recursive: true });
  const loaderOut = join(out, LOADER_NAME);
  const argv = loaderCompileArgv(arch, loaderSrc, loaderOut);
  const cc = await ctx.run(argv, { env: loaderCompileEnv(ctx.sourceDateEpoch), signal: ctx.signal, tailLines: 40 });
  if (cc.spawnError) return infra(`seccomp-compile: ${argv[0]} cannot run (${cc.spawnError}); install ${sec.loader_packages.join(' ')}`);
  if (!cc.ok) return fail('exit-non-zero', `seccomp-compile: compiling ${params.loader} failed (exit ${cc.exitCode ?? cc.signal}):\n${cc.tail.join('\n')}`);
  const loaderBytes = await readFile(loaderOut);

  // ---- outputs
  const filterPath = join(out, FILTER_FILE);
  await writeFileAtomic(filterPath, bytes);
  const expectDenied = deniedExpectation(spec.default_action);
  const env = [
    '# Written by clawos-build (seccomp-compile, C-08): what the guest check seccomp-filter needs.',
    `SECCOMP_ARCH=${shq(arch.name)}`,
    `SECCOMP_FILTER=${shq(FILTER_FILE)}`,
    `SECCOMP_DEFAULT_ACTION=${shq(spec.default_action)}`,
    `SECCOMP_ALLOWED=${shq(params.probe.allowed)}`,
    `SECCOMP_ALLOWED_NR=${allowedNr}`,
    `SECCOMP_DENIED=${shq(params.probe.denied)}`,
    `SECCOMP_DENIED_NR=${deniedNr}`,
    `SECCOMP_DENIED_EXPECT=${shq(expectDenied)}`,
  ].join('\n') + '\n';
  await writeFileAtomic(join(out, ENV_FILE), env);

  // ---- where the host runs this arch, the kernel itself judges the filter now
  // Results without the returned values (a pid): the description goes into the image, byte for byte the same each run.
  let hostProbe: { ran: false; why: string } | { ran: true; results: Record<string, string> } = {
    ran: false,
    why: `the host is ${machine()}, the filter is for ${arch.name}`,
  };
  if (machine() === arch.name) {
    const pr = await ctx.run([loaderOut, '--probe', filterPath, `${params.probe.allowed}=${allowedNr}`, `${params.probe.denied}=${deniedNr}`], {
      captureStdout: true,
      signal: ctx.signal,
    });
    // "NAME NR allowed ret=R" | "NAME NR errno EPERM" | "NAME NR killed SIGSYS"
    const got = pr.stdout.trim().split('\n').map((l) => {
      const [, , result, detail] = l.split(' ');
      return result === 'allowed' ? 'allowed' : `${result ?? ''} ${detail ?? ''}`.trim();
    });
    if (!pr.ok || got[0] !== 'allowed' || got[1] !== expectDenied) {
      return fail(
        'validation-failed',
        `seccomp-compile: on this host the filter does not do what it should: expected "${params.probe.allowed} allowed" and "${params.probe.denied} ${expectDenied}", got:\n${pr.tail.join('\n')}`,
      );
    }
    hostProbe = { ran: true, results: { [params.probe.allowed]: got[0], [params.probe.denied]: got[1] } };
  }

  const byName = Object.fromEntries([...res.allowed].sort((a, b) => (a.name < b.name ? -1 : 1)).map((a) => [a.name, a.nr]));
  const description = {
    arch: arch.name,
    audit_arch: hex32(auditArch),
    x32_bit: x32Bit === undefined ? null : hex32(x32Bit),
    byte_order: sec.byte_order,
    default_action: spec.default_action,
    default_action_value: hex32(actionValue(spec.default_action)),
    allow_exec: spec.allow_exec,
    spec: { spec_id: record.spec_id, version: record.version, path: record.path, sha256: record.sha256 },
    // The tarball by name and hash: its folder is the build dir's, which must not change the filter's bytes.
    kernel_source: { sha256: src.sha256, tarball: src.tarball ? basename(src.tarball) : null },
    tables: table.files,
    syscalls: byName,
    allowed: res.allowed,
    aliases_applied: res.aliasesApplied,
    instructions: prog.length,
    filter: { path: FILTER_FILE, sha256: sha256Hex(bytes), bytes: bytes.length },
    disassembly: disassemble(prog),
    probe: {
      allowed: { name: params.probe.allowed, nr: allowedNr, expect: 'allowed' },
      denied: { name: params.probe.denied, nr: deniedNr, expect: expectDenied },
      host: hostProbe,
    },
    loader: {
      path: LOADER_NAME,
      source: params.loader,
      sha256: sha256Hex(loaderBytes),
      bytes: loaderBytes.length,
      elf_machine: elfMachine(loaderBytes),
      // Without this checkout's paths: the description is the same bytes on every machine.
      compile: loaderCompileRecord(arch, params.loader),
    },
  };
  const descPath = join(out, DESCRIPTION_FILE);
  await writeJsonAtomic(descPath, description);

  const rel = (p: string) => relative(ctx.buildDir, p);
  const evidence: Evidence[] = [
    { label: 'seccomp filter', path: rel(filterPath), sha256: sha256Hex(bytes) },
    { label: 'filter description', path: rel(descPath), sha256: await sha256File(descPath) },
    { label: LOADER_NAME, path: rel(loaderOut), sha256: sha256Hex(loaderBytes) },
  ];
  const aliasNote = res.aliasesApplied.length ? `, aliases ${res.aliasesApplied.map((a) => `${a.name}->${a.to.join('+')}`).join(' ')}` : '';
  return pass(
    `${arch.name}: ${res.allowed.length} syscalls allowed${aliasNote}, default ${spec.default_action}, ${prog.length} instructions; ` +
      `${LOADER_NAME} static ${loaderBytes.length} bytes` +
      (hostProbe.ran ? `; on this host: ${Object.entries(hostProbe.results).map(([n, r]) => `${n} ${r}`).join(', ')}` : ''),
    { evidence, data: { syscalls: byName, instructions: prog.length, kernelSourceSha256: src.sha256, tablesFrom: where.how, compile: cc.reproducer, hostProbe } },
  );
}


export const seccompCompileStep: Step = {
  name: 'seccomp-compile',
  // 2: the kernel tarball recorded by name, not by its build-dir path (the filter's JSON differed between folders).
  version: 2,
  params: paramsSchema(
    {
      whitelist: P.path,
      schema: P.path,
      kernel_dir: P.path,
      loader: P.path,
      probe: { type: 'object', additionalProperties: false, required: ['allowed', 'denied'], properties: { allowed: { type: 'string' }, denied: { type: 'string' } } },
    },
    ['whitelist', 'schema', 'kernel_dir', 'loader', 'probe'],
  ),
  // Syscall tables are extracted into the shared cache.
  sandbox: { cache: true },
  toolPackages: (arch) => (arch ? (seccompOf(arch)?.loader_packages ?? []) : []),
  implicitInputs: (_arch, params) => (['loader', 'schema'] as const).map((k) => params[k]).filter((v): v is string => typeof v === 'string'),
  run: runSeccompCompile,
};
