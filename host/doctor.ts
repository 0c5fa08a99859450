/**
 * `clawos-build doctor` (G-01): is this host able to run the build? Each check
 * probes one thing the run needs (a tool and its version, a firmware file, a
 * GRUB platform, a target-arch Debian package, free disk, a KVM that really
 * runs guests) and, when it is missing, carries the exact fix. The knowledge is
 * data: specs/doctor.yaml plus qemu/*.yaml, specs/arch/*.yaml and
 * kernel-config/source.yaml. `--fix` runs the apt/dpkg commands as root and
 * fetches the target-arch packages into the build cache, then checks again.
 */
import type { Runner } from '../lib/proc.js';
import { sha256File } from '../lib/hash.js';
import { access, constants, readFile, stat, statfs } from 'node:fs/promises';
import { machine as hostMachine } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { InfraError } from '../lib/errors.js';
import { run as procRun, type LineSink, type RunOptions, type RunResult } from '../lib/proc.js';
import { chooseAccelerator } from '../qemu/kvm-probe.js';
import { loadMachine, type QemuMachine } from '../qemu/machine.js';
import { debRoot, expandArchPath, loadArches, type ArchSpec } from '../pipeline/catalog/arch.js';
import { debsReferenced, downloadCacheDir, fetchDeb } from '../pipeline/inputs/debs.js';
import { loadKernelSourceConfig, loadPinnedKernelSource, SOURCE_YAML } from '../pipeline/kernel/source.js';
import { LOCK_FILE, loadLock } from '../pipeline/catalog/input-lock.js';
import { hostToolVersions } from '../pipeline/inputs/lock-resolve.js';
import { loadYamlDocument } from '../lib/data.js';

export type { Runner } from '../lib/proc.js';

export interface VersionProbe {
  args: string[];
  pattern: string;
  min?: string;
  why?: string;
}

export interface DoctorData {
  tools: { command: string; package: string; why: string; version?: VersionProbe; required?: boolean }[];
  files: { path: string; package: string; why: string }[];
  qemu_version: VersionProbe & { min: string; why: string };
  kernel_source_package: string;
  disk: { min_free_gib: number };
  kvm_probe: { iso: string };
}

/** The ISO's inputs from packages: the UKI's EFI stub and GRUB i386-pc's dir (BIOS path). */
function isoInputPaths(a: ArchSpec): string[] {
  return [a.iso.uki.stub, ...(a.iso.bios_grub ? [a.iso.bios_grub.dir] : [])];
}

export async function loadDoctorData(repoRoot: string): Promise<DoctorData> {
  const schema = JSON.parse(await readFile(join(repoRoot, 'specs', 'schemas', 'doctor.schema.json'), 'utf8'));
  return (await loadYamlDocument(join(repoRoot, 'specs', 'doctor.yaml'), 'specs/doctor.yaml', schema)) as DoctorData;
}

export type CheckStatus = 'ok' | 'missing' | 'warn' | 'skipped';

export interface DoctorCheck {
  /** Stable key, e.g. "tool:pahole", "deb:arm64:grub-efi-arm64-bin". */
  id: string;
  /** What a person reads, e.g. "pahole", "grub arm64-efi". */
  label: string;
  status: CheckStatus;
  /** A missing required check makes doctor exit 4; others only warn. */
  required: boolean;
  detail: string;
  why?: string;
  /** The exact fix, as a person would type it. */
  fix?: string;
  /** Debian packages that fix it (apt-get install). */
  install?: string[];
  /** dpkg architectures that must be added first. */
  add_arch?: string[];
  /** apt's package lists must be refreshed. */
  update?: boolean;
}

export interface DoctorReport {
  ok: boolean;
  host: { arch: string; debian_arch: string | null; foreign_arches: string[] };
  checks: DoctorCheck[];
  /** The commands --fix runs, in order. */
  fix_commands: string[][];
  /** Target-arch packages not in the build cache yet (--fix fetches them). */
  prefetch: { arch: string; package: string }[];
}

export interface DoctorOptions {
  repoRoot: string;
  buildDir: string;
  /** Environment for every probe and fix; its PATH decides which tools are found. */
  env?: Record<string, string | undefined>;
  /** Prefix for absolute paths checked on disk (tests: a fake tree). */
  fsRoot?: string;
  /** uname -m; defaults to os.machine(). */
  hostArch?: string;
  runner?: Runner;
  /** Overrides the machines' KVM probe_timeout_s. */
  probeTimeoutS?: number;
  /** Skip the KVM probe (it boots a guest for up to probe_timeout_s). */
  noKvmProbe?: boolean;
}

const APT_INSTALL = ['apt-get', 'install', '-y', '--no-install-recommends'];
const GiB = 1024 ** 3;

function withEnv(o: DoctorOptions): Runner {
  const base = o.runner ?? procRun;
  return (argv, opts = {}) => base(argv, { ...opts, env: { ...o.env, ...opts.env } });
}

async function exists(p: string, mode = constants.F_OK): Promise<boolean> {
  return access(p, mode).then(
    () => true,
    () => false,
  );
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** The first executable `cmd` in PATH, like `command -v`. */
export async function which(cmd: string, path: string): Promise<string | null> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    if ((await stat(p).then((s) => s.isFile(), () => false)) && (await exists(p, constants.X_OK))) return p;
  }
  return null;
}

/** -1, 0, 1 for dotted numeric versions ("7.2.22" vs "7.2"). */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return d < 0 ? -1 : 1;
  }
  return 0;
}

const installFix = (pkgs: string[]) => [...APT_INSTALL, ...pkgs].join(' ');

/** A tool in PATH, with its version when the data says how to read it. */
async function toolCheck(
  o: DoctorOptions,
  run: Runner,
  t: { id: string; label: string; command: string; package: string; why: string; version?: VersionProbe; required?: boolean },
): Promise<DoctorCheck & { path?: string }> {
  const path = o.env?.PATH ?? process.env.PATH ?? '';
  const base = { id: t.id, label: t.label, required: t.required ?? true, why: t.why };
  const found = await which(t.command, path);
  if (!found) {
    // Root's tools live in sbin; a user's PATH often lacks it.
    for (const sbin of ['/usr/local/sbin', '/usr/sbin', '/sbin']) {
      const there = join(o.fsRoot ?? '/', sbin, t.command);
      if (await exists(there, constants.X_OK)) {
        return { ...base, status: 'missing', detail: `found at ${join(sbin, t.command)}, but ${sbin} is not in PATH`, fix: `add ${sbin} to PATH (or run as root)` };
      }
    }
    return { ...base, status: 'missing', detail: `${t.command} not found in PATH`, fix: installFix([t.package]), install: [t.package] };
  }
  if (!t.version) return { ...base, status: 'ok', detail: found, path: found };
  const r = await run([found, ...t.version.args], { captureStdout: true, timeoutMs: 15_000 });
  const m = new RegExp(t.version.pattern).exec(r.tail.join('\n'));
  if (!m || !m[1]) {
    const why = r.spawnError ?? (r.tail.filter((l) => l.trim()).at(-1) || `exit status ${r.exitCode ?? r.signal}`);
    return { ...base, status: 'missing', detail: `${found} ${t.version.args.join(' ')} printed no version (${why})`, fix: `reinstall it: ${[...APT_INSTALL, '--reinstall', t.package].join(' ')}`, path: found };
  }
  const v = m[1];
  if (t.version.min && compareVersions(v, t.version.min) < 0) {
    return {
      ...base,
      status: 'missing',
      detail: `${v} at ${found} is older than ${t.version.min}${t.version.why ? `: ${t.version.why}` : ''}`,
      fix: `${installFix([t.package])} (from a Debian release that has ${t.version.min} or later)`,
      install: [t.package],
      path: found,
    };
  }
  return { ...base, status: 'ok', detail: `${v}${t.version.min ? ` (at least ${t.version.min})` : ''} at ${found}`, path: found };
}

function fileCheck(id: string, label: string, ok: boolean, path: string, pkg: string, why: string): DoctorCheck {
  return ok
    ? { id, label, status: 'ok', required: true, detail: path, why }
    : { id, label, status: 'missing', required: true, detail: `${path} is missing`, why, fix: installFix([pkg]), install: [pkg] };
}

interface DpkgView {
  native: string | null;
  foreign: string[];
  error?: string;
}

async function dpkgView(run: Runner): Promise<DpkgView> {
  const n = await run(['dpkg', '--print-architecture'], { captureStdout: true, timeoutMs: 15_000 });
  if (!n.ok) return { native: null, foreign: [], error: n.spawnError ?? `dpkg --print-architecture: exit ${n.exitCode}` };
  const f = await run(['dpkg', '--print-foreign-architectures'], { captureStdout: true, timeoutMs: 15_000 });
  return { native: n.stdout.trim(), foreign: f.ok ? f.stdout.split('\n').map((s) => s.trim()).filter(Boolean) : [] };
}

/** A target-arch package the build fetches with apt-get download: cached, fetchable, or what to do. */
async function debCheck(run: Runner, cacheDir: string, arch: ArchSpec, pkg: string, dpkg: DpkgView): Promise<DoctorCheck & { cached: boolean }> {
  const spec = `${pkg}:${arch.debian_arch}`;
  const base = { id: `deb:${arch.debian_arch}:${pkg}`, label: `deb ${spec}`, required: true, why: `fetched for ${arch.name} with apt-get download (build cache)` };
  const root = debRoot(cacheDir, arch, pkg);
  if (await isDir(root)) {
    let version = '';
    try {
      version = (JSON.parse(await readFile(join(dirname(root), 'deb.json'), 'utf8')) as { version?: string }).version ?? '';
    } catch {
      /* unpacked without a record: still usable, the build re-fetches when it must */
    }
    return { ...base, status: 'ok', detail: `in the build cache${version ? ` (${version})` : ''}: ${root}`, cached: true };
  }
  if (!dpkg.native) return { ...base, status: 'missing', detail: `cannot ask dpkg/apt: ${dpkg.error}`, fix: 'clawos-build needs a Debian host with dpkg and apt-get', cached: false };
  const foreign = arch.debian_arch !== dpkg.native && !dpkg.foreign.includes(arch.debian_arch);
  if (foreign) {
    return {
      ...base,
      status: 'missing',
      detail: `dpkg does not have the ${arch.debian_arch} architecture, so apt cannot fetch ${spec}`,
      fix: `dpkg --add-architecture ${arch.debian_arch} && apt-get update`,
      add_arch: [arch.debian_arch],
      update: true,
      cached: false,
    };
  }
  const r = await run(['apt-get', 'download', '--print-uris', spec], { captureStdout: true, timeoutMs: 60_000 });
  const uri = /^'([^']+)'\s+(\S+)/m.exec(r.stdout);
  if (r.ok && uri) return { ...base, status: 'ok', detail: `not fetched yet; apt can fetch ${uri[2]} (the build downloads it)`, cached: false };
  const why = r.spawnError ?? (r.tail.filter((l) => /^E: /.test(l)).join(' / ') || r.tail.at(-1) || `exit ${r.exitCode}`);
  return { ...base, status: 'missing', detail: `apt cannot fetch ${spec}: ${why}`, fix: 'apt-get update (and check the apt sources)', update: true, cached: false };
}

async function freeBytes(dir: string): Promise<{ at: string; bytes: number }> {
  let p = resolve(dir);
  for (;;) {
    try {
      const s = await statfs(p);
      return { at: p, bytes: s.bavail * s.bsize };
    } catch {
      const up = dirname(p);
      if (up === p) throw new InfraError(`cannot read free space for ${dir}`);
      p = up;
    }
  }
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const run = withEnv(o);
  const fsRoot = o.fsRoot ?? '/';
  const onDisk = (p: string) => join(fsRoot, p);
  const data = await loadDoctorData(o.repoRoot);
  const arches = [...(await loadArches(o.repoRoot)).values()];
  const machines: QemuMachine[] = [];
  for (const a of arches) machines.push(await loadMachine(o.repoRoot, a.qemu));
  const buildDir = resolve(o.buildDir);
  const cacheDir = join(buildDir, 'cache');
  const host = o.hostArch ?? hostMachine();
  const checks: DoctorCheck[] = [];

  for (const t of data.tools) {
    const { path: _found, ...c } = await toolCheck(o, run, { ...t, id: `tool:${t.command}`, label: t.command });
    checks.push(c);
  }

  const qemuPaths = new Map<string, string>();
  for (const m of machines) {
    const c = await toolCheck(o, run, {
      id: `qemu:${m.arch}`,
      label: m.binary,
      command: m.binary,
      package: m.binary_package ?? m.packages[0]!,
      why: `boots and checks the ${m.arch} ISO`,
      version: data.qemu_version,
    });
    if (c.path) qemuPaths.set(m.arch, c.path);
    delete c.path;
    checks.push(c);
  }
  const seenFw = new Set<string>();
  for (const m of machines) {
    for (const v of m.variants) {
      for (const f of v.firmware) {
        if (seenFw.has(f.path)) continue;
        seenFw.add(f.path);
        checks.push(fileCheck(`firmware:${f.path}`, `firmware ${basename(f.path)}`, await exists(onDisk(f.path), constants.R_OK), f.path, f.package, `${m.arch} ${v.name} boots with it`));
      }
    }
  }
  for (const a of arches) {
    const c = await toolCheck(o, run, {
      id: `cc:${a.name}`,
      label: `${a.kernel.cross_compile}gcc`,
      command: `${a.kernel.cross_compile}gcc`,
      package: a.kernel.compiler_package,
      why: `compiles the ${a.name} kernel`,
    });
    delete c.path;
    if (!checks.some((x) => x.label === c.label)) checks.push(c);
  }

  const src = await loadKernelSourceConfig(o.repoRoot, o.env ?? process.env);
  if (src.deb) {
    // Fetched by the lock; a host copy serves only when it is the locked one.
    const pinned = await loadPinnedKernelSource(o.repoRoot, o.env ?? process.env);
    const host = pinned.tarball!;
    const hostIs = (await exists(onDisk(host), constants.R_OK)) ? ((await sha256File(onDisk(host)).catch(() => '')) === pinned.sha256 ? 'the locked one' : 'not the locked one') : 'absent';
    checks.push({
      id: 'kernel-source',
      label: 'kernel source',
      status: 'ok',
      required: true,
      detail: hostIs === 'the locked one' ? `${host} (the locked one)` : `${src.deb.package} from ${LOCK_FILE}, fetched by the build (host copy ${hostIs})`,
      why: `the kernel the build compiles (${SOURCE_YAML}, pinned in ${LOCK_FILE})`,
    });
  } else if (src.tarball) {
    checks.push(fileCheck('kernel-source', 'kernel source', await exists(onDisk(src.tarball), constants.R_OK), src.tarball, data.kernel_source_package, `the kernel the build compiles (${src.pinnedIn})`));
  } else {
    checks.push({ id: 'kernel-source', label: 'kernel source', status: 'ok', required: true, detail: `downloaded by the build from ${src.url}`, why: `the kernel the build compiles (${src.pinnedIn})` });
  }
  for (const f of data.files) checks.push(fileCheck(`file:${f.path}`, basename(f.path), await exists(onDisk(f.path), constants.R_OK), f.path, f.package, f.why));

  // Target-arch packages (busybox-static, GRUB's arm64-efi modules) and the dpkg architecture they need.
  const dpkg = await dpkgView(run);

  // Host tools stay host packages, but a version other than the lock's is worth a warning.
  const locked = await loadLock(o.repoRoot).catch(() => null);
  if (locked && dpkg.native) {
    const now = await hostToolVersions({ run }, o.repoRoot).catch(() => ({}) as Record<string, string>);
    for (const [p, v] of Object.entries(locked.lock.host_tools)) {
      const have = now[p];
      if (have && have !== 'not-installed' && have !== v) {
        checks.push({ id: `host-tool:${p}`, label: `host ${p}`, status: 'warn', required: false, detail: `${have} installed, ${LOCK_FILE} recorded ${v}`, why: 'outputs may differ from builds made with the recorded version' });
      }
    }
  }
  const prefetch: DoctorReport['prefetch'] = [];
  const debState = new Map<string, DoctorCheck & { cached: boolean }>();
  const debChecks: DoctorCheck[] = [];
  for (const a of arches) {
    const pkgs = [...new Set([...a.debs, ...debsReferenced([...isoInputPaths(a), a.rootfs.busybox])])];
    for (const p of pkgs) {
      const c = await debCheck(run, cacheDir, a, p, dpkg);
      debState.set(`${a.name}:${p}`, c);
      if (!c.cached) prefetch.push({ arch: a.name, package: p });
      const { cached: _cached, ...plain } = c;
      debChecks.push(plain);
    }
  }
  for (const a of arches) {
    for (const t of isoInputPaths(a)) {
      const label = `iso ${basename(t)}`;
      const fromDeb = debsReferenced([t])[0];
      const why = `${basename(t)} (UKI stub or GRUB i386-pc modules) for the ${a.name} ISO`;
      if (!fromDeb) {
        const pkg = undefined as string | undefined;
        const ok = await exists(onDisk(t));
        checks.push(
          ok || !pkg
            ? { id: `grub:${a.name}:${t}`, label, status: ok ? 'ok' : 'missing', required: true, detail: ok ? t : `${t} is missing (no package named for it in specs/arch/${a.name}.yaml)`, why }
            : { id: `grub:${a.name}:${t}`, label, status: 'missing', required: true, detail: `${t} is missing`, why, fix: installFix([pkg]), install: [pkg] },
        );
        continue;
      }
      const d = debState.get(`${a.name}:${fromDeb}`)!;
      const dir = expandArchPath(t, cacheDir, a);
      if (d.cached) {
        const ok = await exists(dir);
        checks.push(
          ok
            ? { id: `grub:${a.name}:${t}`, label, status: 'ok', required: true, detail: dir, why }
            : { id: `grub:${a.name}:${t}`, label, status: 'missing', required: true, detail: `${dir} is missing from the cached ${fromDeb}:${a.debian_arch}`, why, fix: `rm -rf ${dirname(debRoot(cacheDir, a, fromDeb))} (the build fetches it again)` },
        );
      } else {
        checks.push({
          id: `grub:${a.name}:${t}`,
          label,
          status: d.status,
          required: true,
          detail: `from ${fromDeb}:${a.debian_arch}, not fetched yet (${d.status === 'ok' ? 'apt can fetch it' : 'apt cannot fetch it: see below'})`,
          why,
          ...(d.fix ? { fix: d.fix } : {}),
          ...(d.add_arch ? { add_arch: d.add_arch } : {}),
          ...(d.update ? { update: d.update } : {}),
        });
      }
    }
  }
  for (const foreign of [...new Set(arches.map((a) => a.debian_arch))].filter((x) => dpkg.native && x !== dpkg.native)) {
    const has = dpkg.foreign.includes(foreign);
    checks.push(
      has
        ? { id: `multiarch:${foreign}`, label: `dpkg arch ${foreign}`, status: 'ok', required: true, detail: `${foreign} is a foreign architecture of dpkg`, why: `apt fetches the ${foreign} packages` }
        : {
            id: `multiarch:${foreign}`,
            label: `dpkg arch ${foreign}`,
            status: 'missing',
            required: true,
            detail: `dpkg does not have the ${foreign} architecture`,
            why: `apt fetches the ${foreign} packages`,
            fix: `dpkg --add-architecture ${foreign} && apt-get update`,
            add_arch: [foreign],
            update: true,
          },
    );
  }
  checks.push(...debChecks);

  const free = await freeBytes(buildDir);
  const need = data.disk.min_free_gib * GiB;
  checks.push({
    id: 'disk',
    label: 'free disk',
    status: free.bytes >= need ? 'ok' : 'missing',
    required: true,
    detail: `${(free.bytes / GiB).toFixed(1)} GiB free at ${free.at} (needs ${data.disk.min_free_gib} GiB)`,
    why: 'the build dir holds two kernel object trees, the unpacked source, the ISOs and the cache',
    ...(free.bytes >= need ? {} : { fix: `free space on the filesystem of ${free.at}, or pass --build-dir on a filesystem with ${data.disk.min_free_gib} GiB free` }),
  });

  for (const m of machines) checks.push(await kvmCheck(o, run, m, data, buildDir, host, qemuPaths.get(m.arch)));

  const ok = !checks.some((c) => c.required && c.status === 'missing');
  return { ok, host: { arch: host, debian_arch: dpkg.native, foreign_arches: dpkg.foreign }, checks, fix_commands: fixCommands(checks), prefetch };
}

async function kvmCheck(o: DoctorOptions, run: Runner, m: QemuMachine, data: DoctorData, buildDir: string, host: string, qemu: string | undefined): Promise<DoctorCheck> {
  const base = { id: `kvm:${m.arch}`, label: `kvm ${m.arch}`, required: false, why: 'KVM boots are several times faster than TCG; without it the boots use TCG' };
  const kvm = m.accelerators.find((a) => a.name === 'kvm');
  if (!kvm) return { ...base, status: 'skipped', detail: `qemu/${m.arch}.yaml allows no KVM` };
  if (kvm.host_arches && !kvm.host_arches.includes(host)) {
    return { ...base, status: 'skipped', detail: `not applicable: KVM runs ${m.arch} guests only on ${kvm.host_arches.join(' or ')} hosts; this host is ${host}, so they use TCG` };
  }
  if (o.noKvmProbe) return { ...base, status: 'skipped', detail: 'not probed (turned off by the caller)' };
  if (!qemu) return { ...base, status: 'skipped', detail: `not probed: ${m.binary} is missing` };
  const iso = join(buildDir, data.kvm_probe.iso.replace(/\{arch\}/g, m.arch));
  if (!(await exists(iso, constants.R_OK))) {
    return { ...base, status: 'skipped', detail: `not probed: nothing to boot yet (${iso} does not exist); run doctor again after a build` };
  }
  const d = await chooseAccelerator({ machine: m, probe: { media: { iso } }, binary: qemu, runner: run, env: o.env, hostArch: host, probeTimeoutS: o.probeTimeoutS });
  return d.accel === 'kvm'
    ? { ...base, status: 'ok', detail: `KVM runs guests: ${d.note}` }
    : { ...base, status: 'warn', detail: `${d.note} (TCG is slower; boot timeouts for it come from qemu/${m.arch}.yaml)` };
}

/** The commands that fix every missing check that has an apt/dpkg fix, in the order they must run. */
export function fixCommands(checks: DoctorCheck[]): string[][] {
  const missing = checks.filter((c) => c.status === 'missing');
  const arches = [...new Set(missing.flatMap((c) => c.add_arch ?? []))].sort();
  const install = [...new Set(missing.flatMap((c) => c.install ?? []))].sort();
  const update = arches.length > 0 || install.length > 0 || missing.some((c) => c.update);
  return [...arches.map((a) => ['dpkg', '--add-architecture', a]), ...(update ? [['apt-get', 'update']] : []), ...(install.length ? [[...APT_INSTALL, ...install]] : [])];
}

export interface FixResult {
  /** Set when nothing ran because we are not root. */
  refused?: string;
  ran: { command: string; ok: boolean; detail: string }[];
}

/**
 * Run the report's fix commands (as root), then fetch the target-arch packages
 * the build would download into the build cache. Stops at the first failure.
 */
export async function applyFixes(report: DoctorReport, o: DoctorOptions & { isRoot?: boolean; log?: (line: string) => void }): Promise<FixResult> {
  const isRoot = o.isRoot ?? process.getuid?.() === 0;
  const log = o.log ?? (() => {});
  const cmds = report.fix_commands;
  if (!cmds.length && !report.prefetch.length) return { ran: [] };
  if (!isRoot && cmds.length) {
    return { refused: `--fix runs ${cmds.map((c) => c.join(' ')).join(' && ')}: re-run as root (sudo clawos-build doctor --fix)`, ran: [] };
  }
  const run = withEnv({ ...o, env: { ...o.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const sink: LineSink = (stream, line) => {
    if (stream !== 'meta' || line.startsWith('$ ')) log(line);
  };
  const ran: FixResult['ran'] = [];
  for (const argv of cmds) {
    const r = await run(argv, { sink, timeoutMs: 30 * 60_000 });
    const detail = r.ok ? 'done' : r.spawnError ?? (r.tail.filter((l) => /^E: /.test(l)).join(' / ') || `exit status ${r.exitCode ?? r.signal}`);
    ran.push({ command: argv.join(' '), ok: r.ok, detail });
    if (!r.ok) return { ran };
  }
  // The pieces the build would download: fetch them now, as the build does (pipeline/inputs/debs.ts).
  const arches = await loadArches(o.repoRoot);
  for (const p of report.prefetch) {
    const arch = arches.get(p.arch)!;
    const command = `apt-get download ${p.package}:${arch.debian_arch} into ${join(resolve(o.buildDir), 'cache')}`;
    try {
      const f = await fetchDeb({ run, cacheDir: join(resolve(o.buildDir), 'cache'), log, repoRoot: o.repoRoot, downloadCache: downloadCacheDir(o.env ?? process.env) }, arch, p.package);
      ran.push({ command, ok: true, detail: `${f.version}, sha256 ${f.sha256}` });
    } catch (err) {
      if (!(err instanceof InfraError)) throw err;
      ran.push({ command, ok: false, detail: err.message });
      return { ran };
    }
  }
  return { ran };
}

// ---------------------------------------------------------------- text

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
const MARK: Record<CheckStatus, string> = { ok: 'ok', missing: 'MISSING', warn: 'warn', skipped: 'skipped' };

/** The report as a person reads it (asserted verbatim in tests). */
export function formatDoctorReport(r: DoctorReport): string {
  const count = (s: CheckStatus) => r.checks.filter((c) => c.status === s).length;
  const optionalMissing = r.checks.filter((c) => !c.required && c.status === 'missing').length;
  const out = [
    `clawos-build doctor: ${r.checks.length} checks on ${r.host.arch}${r.host.debian_arch ? ` (Debian ${r.host.debian_arch}${r.host.foreign_arches.length ? ` + ${r.host.foreign_arches.join(', ')}` : ''})` : ''}: ${count('ok')} ok, ${count('missing') - optionalMissing} missing, ${plural(count('warn') + optionalMissing, 'warning')}, ${count('skipped')} skipped`,
  ];
  const w = Math.max(...r.checks.map((c) => c.label.length));
  for (const c of r.checks) {
    const mark = c.status === 'missing' && !c.required ? 'warn' : MARK[c.status];
    out.push(`  ${mark.padEnd(7)}  ${c.label.padEnd(w)}  ${c.detail}`);
    if (c.status === 'missing' && c.why) out.push(`  ${''.padEnd(7)}  ${''.padEnd(w)}  needed: ${c.why}`);
    if (c.status === 'missing' && c.fix) out.push(`  ${''.padEnd(7)}  ${''.padEnd(w)}  fix: ${c.fix}`);
  }
  if (r.fix_commands.length) {
    out.push('to fix the packages, as root:');
    for (const c of r.fix_commands) out.push(`  ${c.join(' ')}`);
    out.push('or run: clawos-build doctor --fix');
  }
  out.push(r.ok ? 'everything the build needs is here' : 'the build cannot run on this host yet (exit 4)');
  return out.join('\n') + '\n';
}
