/**
 * Distributed kernel compiles through icecream (Debian's icecc): the compiler
 * make runs, the toolchain environment the remote daemons compile in, and which
 * hosts did the work.
 *
 * - The compiler is `CC=<obj>/clawos-tools/icecc-front <cross>gcc …` on make's
 *   command line: the front keeps the CREATE_TRACE_POINTS files here
 *   (iceccFrontScript) and hands the rest to icecc, which runs
 *   everything that is not a compile (`--version`, `-v`, preprocess-only) with
 *   the local compiler, so Kconfig's CONFIG_CC_VERSION_TEXT and
 *   include/generated/compile.h read exactly as in a local build.
 * - Remote daemons compile in a chroot made from a tarball icecc-create-env
 *   packs from this machine's compiler (cc1, as, their libraries). One per
 *   arch, made once and pinned in the build dir's cache (ensureIceccEnv).
 * - The client's own log (ICECC_DEBUG=debug into ICECC_LOGFILE, never the
 *   build's output) names the host each job went to; countClientJobs reads it.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import type { LocalConfig } from '../catalog/config.js';
import { kbuildCompiler } from './build-env.js';
import { infra, type Outcome } from '../catalog/outcome.js';
import type { IcecreamSetting } from '../catalog/step.js';

/**
 * Whether and how a run compiles through icecream: --icecream / --icecream-jobs N (either turns it on)
 * win over the config file's `icecream: {jobs}`; make -j defaults to 4 x the run's -j, the slots of a
 * small cluster, since the cores that matter are the daemons'.
 */
export function icecreamSetting(cli: { on?: boolean; jobs?: number }, config: LocalConfig['icecream'], runJobs: number): IcecreamSetting | null {
  if (!cli.on && cli.jobs === undefined && !config) return null;
  return { jobs: cli.jobs ?? config?.jobs ?? 4 * runJobs };
}

/** The client log, relative to the kernel's object dir; read after each make, then removed (it grows by ~6 KB a compile). */
export const ICECC_CLIENT_LOG = 'clawos-tools/icecc-client.log';

/** Where the pinned environments live, under the build dir's cache dir. */
export const ICECC_ENV_DIR = 'icecc-env';

/** icecc's platform name for this machine (the one its environments run on). */
export function hostPlatform(nodeArch: string = process.arch): string {
  const names: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l' };
  return names[nodeArch] ?? nodeArch;
}

/** The compiler's target for a CROSS_COMPILE prefix: "aarch64-linux-gnu-" -> "aarch64-linux-gnu", "" -> null (native). */
export function crossTarget(crossCompile: string): string | null {
  return crossCompile === '' ? null : crossCompile.replace(/-$/, '');
}

/**
 * ICECC_VERSION: the native environment as a bare path; a cross one as
 * `<platform>:<tarball>=<target>`, which icecc matches against the target the
 * compiler's name carries (aarch64-linux-gnu-gcc).
 */
export function iceccVersion(tarball: string, crossCompile: string, platform: string = hostPlatform()): string {
  const target = crossTarget(crossCompile);
  return target === null ? tarball : `${platform}:${tarball}=${target}`;
}

/** The front make runs as the compiler (written by prepareKernelIcecc), relative to the kernel's object dir. */
export const ICECC_FRONT = 'clawos-tools/icecc-front';

/** The line the front adds to the client log for each compile it keeps on this machine. */
export const KEPT_HERE = 'clawos-icecc-front: compiled here, defines CREATE_TRACE_POINTS: ';

/**
 * The compiler front under --icecream: a C file that defines CREATE_TRACE_POINTS
 * is compiled by the local gcc, exactly as without --icecream; every other
 * command goes to icecc. Why: icecream splits a compile in two (gcc -E
 * -fdirectives-only here, -fpreprocessed -fdirectives-only on the daemon), and
 * for some trace-event code gcc then emits other line-table rows (.debug_line),
 * which vmlinux's build-id covers, so the kernel would not be a local build's
 * bytes. The objects that differed in a whole x86_64 kernel all define
 * CREATE_TRACE_POINTS; with this front, whole kernels of both arches through a
 * real cluster are the plain build's bytes (docs/decisions.md). They are about
 * 3 % of the compiles. POSIX sh: make runs it once per compile.
 */
export function iceccFrontScript(): string {
  return [
    '#!/bin/sh',
    '# clawos-build: CC under --icecream (pipeline/kernel/icecc.ts iceccFrontScript).',
    'src=',
    'for a do',
    '  case $a in *.c) src=$a ;; esac',
    'done',
    "if [ -n \"$src\" ] && grep -qE '^[[:space:]]*#[[:space:]]*define[[:space:]]+CREATE_TRACE_POINTS([[:space:]]|$)' \"$src\" 2>/dev/null; then",
    `  if [ -n "\${ICECC_LOGFILE:-}" ]; then printf '%s%s\\n' '${KEPT_HERE}' "$src" >> "$ICECC_LOGFILE"; fi`,
    '  exec "$@"',
    'fi',
    'exec icecc "$@"',
    '',
  ].join('\n');
}

/** What make gets on its command line: the kernel build's compiler, through the front (absolute path) and icecc. */
export function iceccMakeVars(crossCompile: string, front: string): string[] {
  return [kbuildCompiler(crossCompile, front)];
}

/** The client's environment: its toolchain environment, and its log in a file (debug level: it names the host of every job). */
export function iceccClientEnv(o: { tarball: string; crossCompile: string; logFile: string; platform?: string }): Record<string, string> {
  return {
    ICECC_VERSION: iceccVersion(o.tarball, o.crossCompile, o.platform),
    ICECC_DEBUG: 'debug',
    ICECC_LOGFILE: o.logFile,
  };
}

/** Where the compile jobs of one make went, from the client's log. */
export interface IceccJobCounts {
  /** Jobs the scheduler sent to a host, by the address the client connected to. */
  remote: Record<string, number>;
  /** Jobs the scheduler gave back to this machine ("building myself, but telling localhost"). */
  local: number;
  /** Remote jobs that failed there and were compiled here instead (a cc-option probe the remote compiler rejects, say). */
  redone: number;
  /** Compiles that found no local iceccd and ran here without the cluster. */
  noDaemon: number;
  /** Compiles the front kept on this machine (they define CREATE_TRACE_POINTS: iceccFrontScript). */
  kept: number;
}

export function emptyCounts(): IceccJobCounts {
  return { remote: {}, local: 0, redone: 0, noDaemon: 0, kept: 0 };
}

const REMOTE = /: Have to use host (\S+):\d+ - Job ID: /;

export function countClientJobs(log: string, into: IceccJobCounts = emptyCounts()): IceccJobCounts {
  for (const line of log.split('\n')) {
    const m = REMOTE.exec(line);
    if (m) into.remote[m[1]!] = (into.remote[m[1]!] ?? 0) + 1;
    else if (line.includes(': building myself, but telling localhost')) into.local++;
    else if (line.includes(': local build forced by remote exception')) into.redone++;
    else if (line.includes(': no local daemon found')) into.noDaemon++;
    else if (line.startsWith(KEPT_HERE)) into.kept++;
  }
  return into;
}

/** Finished jobs per compile server, from an icecc-scheduler log ("END 12 status=0 ... server=daemon-a"). */
export function countSchedulerJobs(log: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of log.split('\n')) {
    const m = /: END \d+ status=\d+ .* server=(\S+)$/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + 1;
  }
  return out;
}

export function remoteTotal(c: IceccJobCounts): number {
  return Object.values(c.remote).reduce((a, b) => a + b, 0);
}

/** One line for the task log and the task's message: which hosts compiled, or why the cluster did nothing. */
export function describeJobs(c: IceccJobCounts): string {
  const total = remoteTotal(c);
  const here = [
    c.local ? `${c.local} given back to this machine by the scheduler` : '',
    c.redone ? `${c.redone} redone here after failing remotely` : '',
    c.noDaemon ? `${c.noDaemon} compiled here because no local iceccd answered` : '',
    c.kept ? `${c.kept} compiled here as they define CREATE_TRACE_POINTS` : '',
  ].filter(Boolean);
  if (total === 0) {
    const why = c.noDaemon ? 'no local iceccd answered (is it running? `systemctl status iceccd`)' : 'the scheduler sent no job to another host';
    return `icecream: no compile job left this machine: ${why}${here.length ? `; ${here.join(', ')}` : ''}`;
  }
  const hosts = Object.entries(c.remote)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
    .map(([h, n]) => `${h} ${n}`);
  return `icecream: ${total} compile job(s) on ${hosts.length} host(s) (${hosts.join(', ')})${here.length ? `; ${here.join(', ')}` : ''}`;
}

/** A pinned toolchain environment for one arch's compiler. */
export interface IceccEnv {
  arch: string;
  /** The compiler driver icecc-create-env packed (resolved, e.g. /usr/bin/aarch64-linux-gnu-gcc-12). */
  compiler: string;
  /** What the pin is keyed by: each file that decides the compiler's output, with its sha256. */
  identity: { path: string; sha256: string }[];
  /** Absolute path of the tarball. */
  tarball: string;
  sha256: string;
  /** Made by this build (false: the pinned one, its sha256 checked). */
  made: boolean;
}

interface Pin {
  format: 'clawos-icecc-env';
  version: 1;
  arch: string;
  compiler: string;
  identity: { path: string; sha256: string }[];
  /** File name next to the pin (icecc-create-env names it by an md5 of its content). */
  tarball: string;
  sha256: string;
}

type Run = (argv: string[], opts?: RunOptions) => Promise<RunResult>;

export function onPath(name: string, path: string | undefined): string | null {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** The files that decide what the compiler makes: the driver, cc1 and the assembler, resolved. */
async function compilerIdentity(crossCompile: string, run: Run, path: string | undefined): Promise<{ compiler: string; identity: Pin['identity'] } | string> {
  const gcc = onPath(`${crossCompile}gcc`, path);
  if (!gcc) return `${crossCompile}gcc is not on PATH`;
  const files = [await realpath(gcc)];
  const cc1 = await run([gcc, '-print-prog-name=cc1'], { captureStdout: true });
  if (!cc1.ok) return `${gcc} -print-prog-name=cc1 failed (exit ${cc1.exitCode})`;
  files.push(await realpath(cc1.stdout.trim()));
  const as = onPath(`${crossCompile}as`, path);
  if (!as) return `${crossCompile}as is not on PATH`;
  files.push(await realpath(as));
  return { compiler: files[0]!, identity: await Promise.all(files.map(async (f) => ({ path: f, sha256: await sha256File(f) }))) };
}

async function readPin(file: string): Promise<Pin | null> {
  try {
    const p = JSON.parse(await readFile(file, 'utf8')) as Partial<Pin>;
    return p.format === 'clawos-icecc-env' && p.version === 1 && typeof p.tarball === 'string' && typeof p.sha256 === 'string' ? (p as Pin) : null;
  } catch {
    return null;
  }
}

/**
 * The arch's environment: the pinned one when the compiler is unchanged and the
 * tarball still hashes to its pin, else a new one from icecc-create-env, pinned.
 * It lives in <cache>/icecc-env/<arch>/<identity>/ next to pin.json: the cache
 * is kept from run to run of the build dir and writable in the kernel build's sandbox, and
 * the tarball is this machine's (mtimes make its bytes differ per making), so
 * it is pinned where it is made, not in the repo.
 */
export async function ensureIceccEnv(o: {
  arch: string;
  crossCompile: string;
  cacheDir: string;
  run: Run;
  log: (line: string) => void;
  /** PATH the compiler is looked up in (default: this process's). */
  path?: string;
}): Promise<{ ok: true; env: IceccEnv } | { ok: false; outcome: Outcome }> {
  const id = await compilerIdentity(o.crossCompile, o.run, o.path ?? process.env.PATH);
  if (typeof id === 'string') return { ok: false, outcome: infra(`icecream: no toolchain environment for ${o.arch}: ${id}`) };
  const key = sha256Hex(JSON.stringify(id.identity)).slice(0, 16);
  const dir = join(o.cacheDir, ICECC_ENV_DIR, o.arch, key);
  const pinFile = join(dir, 'pin.json');
  const pin = await readPin(pinFile);
  if (pin && existsSync(join(dir, pin.tarball))) {
    const sha = await sha256File(join(dir, pin.tarball));
    if (sha === pin.sha256) return { ok: true, env: { arch: o.arch, compiler: pin.compiler, identity: pin.identity, tarball: join(dir, pin.tarball), sha256: sha, made: false } };
    o.log(`icecream: ${join(dir, pin.tarball)} hashes to ${sha}, not the pinned ${pin.sha256}: making it again`);
  }
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, 'make-'));
  try {
    const r = await o.run(['icecc-create-env', id.compiler], { cwd: tmp, captureStdout: true });
    const name = /^creating (\S+\.tar\.(?:gz|bz2|xz|zst))$/m.exec(r.stdout)?.[1];
    if (!r.ok || !name) {
      return { ok: false, outcome: infra(`icecream: icecc-create-env ${id.compiler} failed (exit ${r.exitCode ?? r.signal}${r.spawnError ? `: ${r.spawnError}` : ''}): ${r.tail.slice(-3).join(' / ')}`) };
    }
    await rename(join(tmp, name), join(dir, name));
    const sha256 = await sha256File(join(dir, name));
    const next: Pin = { format: 'clawos-icecc-env', version: 1, arch: o.arch, compiler: id.compiler, identity: id.identity, tarball: name, sha256 };
    await writeJsonAtomic(pinFile, next);
    o.log(`icecream: made the ${o.arch} environment ${join(dir, name)} (sha256 ${sha256}) for ${id.compiler}`);
    return { ok: true, env: { arch: o.arch, compiler: id.compiler, identity: id.identity, tarball: join(dir, name), sha256, made: true } };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A kernel build's side of icecream: what make gets, and the tally of where its jobs went. */
export class IceccKernelBuild {
  readonly counts = emptyCounts();

  constructor(
    readonly env: IceccEnv,
    readonly makeVars: string[],
    /** Added to make's environment. */
    readonly clientEnv: Record<string, string>,
    private readonly logFile: string,
  ) {}

  /** Count the jobs of the make that just ran and start the next one's log empty; the counts so far. */
  async takeJobs(): Promise<IceccJobCounts> {
    let text = '';
    try {
      text = await readFile(this.logFile, 'utf8');
    } catch {
      // No log: icecc never ran (nothing to compile).
    }
    await rm(this.logFile, { force: true });
    return countClientJobs(text, this.counts);
  }

  /** For build-info.json and the task's record: the environment and where the jobs went. */
  record(): { env: { arch: string; compiler: string; tarball: string; sha256: string; made: boolean }; jobs: IceccJobCounts } {
    const { arch, compiler, tarball, sha256, made } = this.env;
    return { env: { arch, compiler, tarball, sha256, made }, jobs: this.counts };
  }
}

/** The environment for the arch's compiler (made or pinned), and make's variables and environment for a build in obj. */
export async function prepareKernelIcecc(o: {
  arch: string;
  crossCompile: string;
  cacheDir: string;
  obj: string;
  run: Run;
  log: (line: string) => void;
}): Promise<{ ok: true; build: IceccKernelBuild } | { ok: false; outcome: Outcome }> {
  const e = await ensureIceccEnv(o);
  if (!e.ok) return e;
  const logFile = join(o.obj, ICECC_CLIENT_LOG);
  await mkdir(join(logFile, '..'), { recursive: true });
  await rm(logFile, { force: true });
  o.log(`icecream: ${e.env.made ? 'made' : 'pinned'} environment ${e.env.tarball} sha256 ${e.env.sha256}`);
  const front = join(o.obj, ICECC_FRONT);
  await writeFile(front, iceccFrontScript(), { mode: 0o755 });
  return { ok: true, build: new IceccKernelBuild(e.env, iceccMakeVars(o.crossCompile, front), iceccClientEnv({ tarball: e.env.tarball, crossCompile: o.crossCompile, logFile }), logFile) };
}
