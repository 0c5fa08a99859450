/**
 * B-08: ClawOS's eBPF programs (C, CO-RE) and their static loader for one arch.
 *
 *   1. the frozen P1.3 spec (B-01's copy, re-checked against its freeze record)
 *      becomes clawos-events.h: the event structs with every offset asserted;
 *   2. `bpftool btf dump` of the vmlinux A-01 just built becomes vmlinux.h: the
 *      programs are compiled against the BTF of the kernel they will run on,
 *      never the host's;
 *   3. clang's bpf target compiles each ebpf/src/*.bpf.c; llvm-strip drops the
 *      DWARF (the BTF stays, CO-RE needs it);
 *   4. {cross}gcc -static links the loader clawos-ebpf against libbpf, libelf
 *      and zlib from the locked target-arch dev packages (specs/arch ebpf.debs);
 *   5. specs/ebpf/policy.yaml becomes policy.conf (the loader's maps) and, with
 *      the arch's execve/openat numbers from the kernel tree, ebpf.env (the
 *      in-guest checks' probes).
 *
 * Outputs: <outDir>/image/ (what the rootfs ships in /usr/lib/clawos/ebpf) and,
 * beside it, the generated headers and ebpf-build.json (sizes, sha256, commands).
 * The proof is in the guest (checks.d/ebpf.sh, tasks B-02, B-03, B-04, F-03).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { checkData } from '../../lib/data.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import { fetchDebs } from '../inputs/debs.js';
import { ebpfEventsHeader } from '../p1-specs/ebpf-events-header.js';
import { checkSpecText, freezeRecordName, type FreezeRecord } from '../p1-specs/spec-check.js';
import { bpfCompileArgv, bpfStripArgv, EM_BPF, LOADER_NAME, loaderCompileArgv } from '../security/ebpf-compile.js';
import { checkEbpfPolicy, ebpfEnv, policyConf, type EbpfPolicy } from '../security/ebpf-policy.js';
import { elfMachine } from '../security/seccomp-loader.js';
import { seccompOf, tableAlternatives, tableInTree } from '../security/seccomp-arch.js';
import { readSyscallTable } from '../security/seccomp-tables.js';

export const IMAGE_SUBDIR = 'image';
export const EVENTS_HEADER = 'clawos-events.h';
export const VMLINUX_HEADER = 'vmlinux.h';

interface Params {
  eventsSpec: string;
  eventsSchema: string;
  policy: string;
  policySchema: string;
  sources: string;
  kernelDir: string;
}

function paramsOf(p: Record<string, unknown>): Params | string {
  const keys = { events_spec: 'eventsSpec', events_schema: 'eventsSchema', policy: 'policy', policy_schema: 'policySchema', sources: 'sources', kernel_dir: 'kernelDir' } as const;
  const out: Record<string, string> = {};
  for (const [k, to] of Object.entries(keys)) {
    const v = p[k];
    if (typeof v !== 'string' || v === '') return `ebpf-build: parameter '${k}' must be a non-empty path`;
    out[to] = v;
  }
  return out as unknown as Params;
}

const isOutcome = (x: unknown): x is Outcome => !!x && typeof x === 'object' && 'status' in x;

/** The frozen P1.3 copy, checked against its record and the schema, as the generated header. */
async function eventsHeader(ctx: StepContext, params: Params): Promise<{ text: string; record: FreezeRecord } | Outcome> {
  const copyAbs = ctx.buildPath(params.eventsSpec);
  const recordAbs = join(dirname(copyAbs), freezeRecordName(copyAbs));
  let record: FreezeRecord;
  let bytes: Buffer;
  try {
    record = JSON.parse(await readFile(recordAbs, 'utf8')) as FreezeRecord;
    bytes = await readFile(copyAbs);
  } catch {
    return fail('output-missing', `ebpf-build: ${params.eventsSpec} or its freeze record ${relative(ctx.buildDir, recordAbs)} is missing: P1.3 is not frozen (B-01)`);
  }
  const sha = sha256Hex(bytes);
  if (sha !== record.sha256) return fail('validation-failed', `ebpf-build: ${params.eventsSpec} has sha256 ${sha}, its freeze record says ${record.sha256}`);
  let schema: object;
  try {
    schema = JSON.parse(await readFile(join(ctx.repoRoot, params.eventsSchema), 'utf8')) as object;
  } catch (err) {
    return fail('spec-invalid', `ebpf-build: ${params.eventsSchema}: ${(err as Error).message}`);
  }
  const checked = checkSpecText(bytes.toString('utf8'), record.path, schema, { repoRoot: ctx.repoRoot });
  if (!checked.ok) return fail('spec-invalid', checked.problems.map(formatDiagnostic).join('\n'));
  const h = ebpfEventsHeader(checked.value, { path: record.path, sha256: record.sha256 });
  if (!h.ok) return fail('spec-invalid', `ebpf-build: ${record.path}: ${h.problems.map((p) => p.message).join('; ')}`);
  return { text: h.text, record };
}

export async function runEbpfBuild(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'ebpf-build builds for one architecture; give the task per_arch: true');
  const eb = arch.ebpf;
  if (!eb) return fail('spec-invalid', `ebpf-build: specs/arch/${arch.name}.yaml has no ebpf block`);
  const sec = seccompOf(arch);
  if (!sec) return fail('spec-invalid', `ebpf-build: specs/arch/${arch.name}.yaml has no seccomp block (its syscall table gives the execve and openat numbers)`);
  const params = paramsOf(ctx.params);
  if (typeof params === 'string') return fail('spec-invalid', params);
  const image = join(ctx.outDir, IMAGE_SUBDIR);
  const gen = join(ctx.outDir, 'include');
  // A failed run must not leave the previous programs looking current.
  await rm(image, { recursive: true, force: true });
  await rm(gen, { recursive: true, force: true });
  await mkdir(image, { recursive: true });
  await mkdir(gen, { recursive: true });
  const rel = (p: string) => relative(ctx.buildDir, p);

  // ---- P1.3 -> clawos-events.h
  const ev = await eventsHeader(ctx, params);
  if (isOutcome(ev)) return ev;
  await writeFileAtomic(join(gen, EVENTS_HEADER), ev.text);

  // ---- the policy
  const pol = await checkData<EbpfPolicy>(ctx.repoRoot, params.policy, params.policySchema);
  if (pol.diagnostics.length) return fail('spec-invalid', pol.diagnostics.map(formatDiagnostic).join('\n'));
  const polProblems = checkEbpfPolicy(pol.value).map((p) => formatDiagnostic({ ...pol.src.locate(p.path), message: p.message }));
  if (polProblems.length) return fail('spec-invalid', polProblems.join('\n'));
  const policyText = await readFile(join(ctx.repoRoot, params.policy));
  const policySource = { path: params.policy, sha256: sha256Hex(policyText) };

  // ---- the kernel A-01 built: its BTF, and its syscall numbers
  const kdir = ctx.buildPath(params.kernelDir);
  const vmlinux = join(kdir, 'obj', 'vmlinux');
  if (!existsSync(vmlinux)) return fail('output-missing', `ebpf-build: ${rel(vmlinux)} is missing: the kernel build (A-01) left no vmlinux to take the BTF from`);
  let srcDir: string;
  try {
    const info = JSON.parse(await readFile(join(kdir, 'build-info.json'), 'utf8')) as { source?: { srcDir?: string } };
    if (typeof info.source?.srcDir !== 'string') throw new Error('no source.srcDir');
    srcDir = info.source.srcDir;
  } catch (err) {
    return fail('output-missing', `ebpf-build: ${rel(join(kdir, 'build-info.json'))}: ${(err as Error).message}: the kernel build (A-01) did not record its source`);
  }
  ctx.progress('dumping the kernel BTF as vmlinux.h');
  const dump = await ctx.run(['bpftool', 'btf', 'dump', 'file', vmlinux, 'format', 'c'], { captureStdout: true, signal: ctx.signal, tailLines: 20 });
  if (dump.spawnError) return infra(`ebpf-build: bpftool cannot run (${dump.spawnError}); install ${eb.tool_packages.join(' ')}`);
  if (!dump.ok || !dump.stdout.includes('struct task_struct {')) {
    return fail('exit-non-zero', `ebpf-build: bpftool btf dump file ${rel(vmlinux)} gave no kernel types (is DEBUG_INFO_BTF on?):\n${dump.tail.join('\n')}`);
  }
  await writeFileAtomic(join(gen, VMLINUX_HEADER), dump.stdout);
  // The first of the arch's table alternatives whose files the tree has (Linux 6.11 moved arm64's).
  const spec = tableInTree(sec, srcDir) ?? tableAlternatives(sec)[0]!;
  const table = await readSyscallTable(srcDir, spec);
  if (!table.ok) return fail('validation-failed', `ebpf-build: the ${arch.name} syscall table cannot be read:\n${table.problems.join('\n')}`);
  const nrExecve = table.table.numbers.get('execve');
  const nrOpenat = table.table.numbers.get('openat');
  if (nrExecve === undefined || nrOpenat === undefined) return fail('validation-failed', `ebpf-build: the ${arch.name} syscall table has no execve or openat`);

  // ---- the programs
  const srcAbs = join(ctx.repoRoot, params.sources);
  const programs = (await readdir(srcAbs).catch(() => [] as string[])).filter((f) => f.endsWith('.bpf.c')).sort();
  if (programs.length === 0) return fail('spec-invalid', `ebpf-build: no *.bpf.c in ${params.sources}`);
  const debs = await fetchDebs(ctx, arch, eb.debs);
  const includes = debs.map((d) => join(d.root, 'usr/include'));
  const objects: { name: string; bytes: number; sha256: string }[] = [];
  const commands: string[][] = [];
  const env = { SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch), LC_ALL: 'C' };
  for (const p of programs) {
    const name = p.replace(/\.c$/, '.o');
    ctx.progress(`compiling ${p}`);
    const tmp = join(gen, name);
    const argv = bpfCompileArgv({ targetArch: eb.target_arch, src: join(srcAbs, p), out: tmp, includes: [gen, ...includes], srcDir: srcAbs, genDir: gen });
    const cc = await ctx.run(argv, { env, signal: ctx.signal, tailLines: 60 });
    if (cc.spawnError) return infra(`ebpf-build: ${argv[0]} cannot run (${cc.spawnError}); install ${eb.tool_packages.join(' ')}`);
    if (!cc.ok) return fail('exit-non-zero', `ebpf-build: compiling ${params.sources}/${p} failed (exit ${cc.exitCode ?? cc.signal}):\n${cc.tail.join('\n')}`);
    const out = join(image, name);
    const strip = await ctx.run(bpfStripArgv(tmp, out), { signal: ctx.signal, tailLines: 20 });
    if (!strip.ok) return fail('exit-non-zero', `ebpf-build: stripping ${name} failed:\n${strip.tail.join('\n')}`);
    const bytes = await readFile(out);
    if (elfMachine(bytes) !== EM_BPF) return fail('validation-failed', `ebpf-build: ${name} is not a BPF ELF object (e_machine ${elfMachine(bytes)})`);
    objects.push({ name, bytes: bytes.length, sha256: sha256Hex(bytes) });
    commands.push(argv);
  }

  // ---- the loader
  ctx.progress(`linking ${LOADER_NAME}`);
  const loaderOut = join(image, LOADER_NAME);
  const largv = loaderCompileArgv({
    cc: `${arch.kernel.cross_compile}gcc`,
    src: join(srcAbs, `${LOADER_NAME}.c`),
    out: loaderOut,
    includes: [gen, ...includes],
    libDirs: debs.map((d) => join(d.root, eb.lib_dir)),
    srcDir: srcAbs,
    genDir: gen,
  });
  const lc = await ctx.run(largv, { env, signal: ctx.signal, tailLines: 60 });
  if (lc.spawnError) return infra(`ebpf-build: ${largv[0]} cannot run (${lc.spawnError}); install ${eb.tool_packages.join(' ')}`);
  if (!lc.ok) return fail('exit-non-zero', `ebpf-build: linking ${LOADER_NAME} failed (exit ${lc.exitCode ?? lc.signal}):\n${lc.tail.join('\n')}`);
  const loaderBytes = await readFile(loaderOut);
  commands.push(largv);

  // ---- policy and probes for the guest
  await writeFileAtomic(join(image, 'policy.conf'), policyConf(pol.value, policySource));
  await writeFileAtomic(join(image, 'ebpf.env'), ebpfEnv(pol.value, arch.name, { execve: nrExecve, openat: nrOpenat }));

  const vmlinuxH = await sha256File(join(gen, VMLINUX_HEADER));
  const eventsH = sha256Hex(ev.text);
  // Without this checkout's or build dir's paths: the record is the same on every machine.
  const strip = (a: string[]) => a.map((s) => s.split(ctx.buildDir).join('<build>').split(ctx.repoRoot).join('<repo>').split(ctx.cacheDir).join('<cache>'));
  const description = {
    arch: arch.name,
    target_arch: eb.target_arch,
    events_spec: { spec_id: ev.record.spec_id, version: ev.record.version, path: ev.record.path, sha256: ev.record.sha256, header_sha256: eventsH },
    policy: policySource,
    kernel_btf: { vmlinux: rel(vmlinux), vmlinux_h_sha256: vmlinuxH },
    syscalls: { execve: nrExecve, openat: nrOpenat, tables: table.table.files },
    objects,
    loader: { path: LOADER_NAME, bytes: loaderBytes.length, sha256: sha256Hex(loaderBytes), elf_machine: elfMachine(loaderBytes) },
    debs: debs.map((d) => ({ package: d.package, arch: d.arch, version: d.version, sha256: d.sha256 })),
    commands: commands.map(strip),
  };
  const descPath = join(ctx.outDir, 'ebpf-build.json');
  await writeJsonAtomic(descPath, description);

  const evidence: Evidence[] = [
    ...objects.map((o) => ({ label: o.name, path: rel(join(image, o.name)), sha256: o.sha256 })),
    { label: LOADER_NAME, path: rel(loaderOut), sha256: sha256Hex(loaderBytes) },
    { label: 'build record', path: rel(descPath), sha256: await sha256File(descPath) },
  ];
  return pass(
    `${arch.name}: ${objects.map((o) => `${o.name} ${o.bytes} B`).join(', ')}; ${LOADER_NAME} static ${loaderBytes.length} B; ` +
      `against ${rel(vmlinux)}'s BTF; P1.3 ${ev.record.version} header; execve=${nrExecve} openat=${nrOpenat}`,
    { evidence, data: description },
  );
}

export const ebpfBuildStep: Step = {
  name: 'ebpf-build',
  version: 1,
  lockedInputs: true,
  params: paramsSchema(
    { events_spec: P.path, events_schema: P.path, policy: P.path, policy_schema: P.path, sources: P.path, kernel_dir: P.path },
    ['events_spec', 'events_schema', 'policy', 'policy_schema', 'sources', 'kernel_dir'],
  ),
  // The target-arch dev packages are unpacked into the shared cache.
  sandbox: { cache: true },
  toolPackages: (arch) => arch?.ebpf?.tool_packages ?? [],
  implicitInputs: (_arch, params) => (['events_schema', 'policy', 'policy_schema', 'sources'] as const).map((k) => params[k]).filter((v): v is string => typeof v === 'string'),
  run: runEbpfBuild,
};
