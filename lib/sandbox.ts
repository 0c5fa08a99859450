/**
 * Hermetic execution under bubblewrap (Debian `bubblewrap`), the mechanical form
 * of the catalog's RULE-001 (an agent writes only its own directory) and RULE-006
 * (no scope creep: no network unless the task declares `network: true`).
 *
 * A sandboxed command sees:
 * - the whole host filesystem read-only (`--ro-bind / /`): toolchains, dpkg's and
 *   apt's databases and /etc are all needed by some step, and RULE-001 is a rule
 *   about writes, so a narrower read set would only add breakage;
 * - a private /dev (plus the device nodes the policy names), a fresh /proc;
 * - a private tmpfs /tmp (the project and build dir are bound back read-only when
 *   they live under /tmp);
 * - writable: ONLY the task's output dir and the policy's explicit extra list
 *   (the shared, content-keyed download cache);
 * - no network namespace but lo, unless network is declared;
 * - no capabilities (as root, a sandbox with capabilities could remount / read-write);
 * - its own pid namespace: when the outer bwrap dies (a timeout kills its process
 *   group), --die-with-parent kills the namespace's init and the kernel kills every
 *   process in it, even one that called setsid() to leave the process group;
 * - an environment built explicitly: a short list inherited from clawos-build, plus
 *   what the caller passes. Nothing else leaks in (tokens, SSH agents …).
 */
import type { Runner } from './proc.js';
import { existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { InfraError } from './errors.js';
import { run as procRun, type CommandWrapper, type RunOptions, type RunResult } from './proc.js';

export interface SandboxPolicy {
  /** Task instance id, for diagnostics ("A-01@x86_64"). */
  task: string;
  /** The task's own output directory: the one project path it may write. */
  outDir: string;
  /** Further writable directories the task needs (e.g. the shared content-keyed cache). */
  writable?: string[];
  /** Paths bound back read-only after the private /tmp (the repo and build dir, when under /tmp). */
  readOnly?: string[];
  /** The task declared `network: true`: keep the host's network. */
  network: boolean;
  /** Device nodes bound into the private /dev when they exist on the host (e.g. /dev/kvm). */
  devices?: string[];
  /** Where the task is declared, named in the RULE-006 diagnosis (e.g. tasks/A-01.yaml). */
  specFile?: string;
}

/** How commands run: under bwrap (probed), or explicitly unconfined (recorded). */
export type SandboxMode = { kind: 'bwrap'; bwrap: string; version: string } | { kind: 'off'; reason: string };

/** The explicit opt-out (`--no-sandbox`). Every task event of such a run must record it. */
export const NO_SANDBOX: SandboxMode = Object.freeze({ kind: 'off', reason: '--no-sandbox' });

/** Taken from clawos-build's own environment into every sandbox; everything else is passed explicitly. */
export const INHERITED_ENV: readonly string[] = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TERM'];
/** Inherited only by tasks that declare network: true. */
export const PROXY_ENV: readonly string[] = ['http_proxy', 'https_proxy', 'no_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY'];

/** The environment a sandboxed command gets: inherited list + caller's (undefined removes). */
export function sandboxEnv(
  policy: Pick<SandboxPolicy, 'network'>,
  callerEnv: Record<string, string | undefined> = {},
  parentEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  // bash sources ~/.bashrc when its stdin is a socket (Node's pipes are socketpairs)
  // and SHLVL is unset; a fixed SHLVL keeps the user's shell setup out of the task.
  const env: Record<string, string> = { SHLVL: '1' };
  for (const k of [...INHERITED_ENV, ...(policy.network ? PROXY_ENV : [])]) {
    const v = parentEnv[k];
    if (v !== undefined) env[k] = v;
  }
  for (const [k, v] of Object.entries(callerEnv)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

interface Mount {
  path: string;
  how: '--ro-bind' | '--bind' | '--dev-bind';
}

const depth = (p: string) => p.split('/').filter(Boolean).length;
const RANK: Record<Mount['how'], number> = { '--ro-bind': 0, '--bind': 1, '--dev-bind': 2 };

/**
 * The full bwrap command line for one command. Pure: the caller makes sure the
 * writable dirs exist and filters the devices (sandboxWrapper does both).
 */
export function bwrapArgv(
  bwrap: string,
  policy: SandboxPolicy,
  cmd: { argv: string[]; cwd?: string; env: Record<string, string> },
): string[] {
  const mounts = new Map<string, Mount>();
  const add = (p: string, how: Mount['how']) => {
    const path = resolve(p);
    const had = mounts.get(path);
    // The same path named twice: the more permissive binding wins (outDir beats readOnly).
    if (!had || RANK[how] > RANK[had.how]) mounts.set(path, { path, how });
  };
  for (const p of policy.readOnly ?? []) add(p, '--ro-bind');
  add(policy.outDir, '--bind');
  for (const p of policy.writable ?? []) add(p, '--bind');
  // A cwd outside every binding (under the private /tmp) must still exist: read-only.
  const within = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  if (cmd.cwd && ![...mounts.keys()].some((m) => within(resolve(cmd.cwd!), m))) add(cmd.cwd, '--ro-bind');
  for (const d of policy.devices ?? []) add(d, '--dev-bind');
  // Parents before children, so a deeper binding is mounted on top of a shallower one.
  const ordered = [...mounts.values()].sort((a, b) => depth(a.path) - depth(b.path) || RANK[a.how] - RANK[b.how] || a.path.localeCompare(b.path));

  const args = [bwrap, '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'];
  for (const m of ordered) args.push(m.how, m.path, m.path);
  args.push('--unshare-pid', '--unshare-ipc');
  if (!policy.network) args.push('--unshare-net');
  args.push('--die-with-parent', '--new-session', '--cap-drop', 'ALL');
  if (cmd.cwd) args.push('--chdir', resolve(cmd.cwd));
  args.push('--clearenv');
  for (const k of Object.keys(cmd.env).sort()) args.push('--setenv', k, cmd.env[k]!);
  args.push('--', ...cmd.argv);
  return args;
}

const EXEC_FAILED = /^bwrap: execvp (.+): No such file or directory$/;

/**
 * The proc.ts wrapper for a task's commands, or undefined when the sandbox is off
 * (the caller records sandboxRecord(mode, policy) either way).
 */
export function sandboxWrapper(mode: SandboxMode, policy: SandboxPolicy, parentEnv: NodeJS.ProcessEnv = process.env): CommandWrapper | undefined {
  if (mode.kind === 'off') return undefined;
  return (cmd) => {
    for (const d of [policy.outDir, ...(policy.writable ?? [])]) mkdirSync(d, { recursive: true });
    const effective: SandboxPolicy = { ...policy, devices: (policy.devices ?? []).filter((d) => existsSync(d)) };
    return {
      argv: bwrapArgv(mode.bwrap, effective, { argv: cmd.argv, cwd: cmd.cwd, env: sandboxEnv(policy, cmd.env, parentEnv) }),
      // The environment is inside the argv (--setenv); bwrap itself needs nothing more.
      env: {},
      cwd: cmd.cwd,
      spawnError: (exitCode, tail) => {
        const m = exitCode === 1 ? tail.map((l) => EXEC_FAILED.exec(l)).find(Boolean) : undefined;
        return m ? `${m[1]}: command not found` : undefined;
      },
    };
  };
}

/** What the scheduler records in a task's event and state record. */
export interface SandboxRecord {
  sandbox: 'bwrap' | 'off';
  /** "bwrap 0.8.0" or why it was off ("--no-sandbox"). */
  sandbox_detail: string;
  network: boolean;
  writable: string[];
}

export function sandboxRecord(mode: SandboxMode, policy: SandboxPolicy): SandboxRecord {
  return {
    sandbox: mode.kind,
    sandbox_detail: mode.kind === 'bwrap' ? `bwrap ${mode.version}` : mode.reason,
    network: policy.network,
    writable: [policy.outDir, ...(policy.writable ?? [])],
  };
}


const FIX_NO_SANDBOX = 'or, to run unconfined, pass --no-sandbox (recorded in every task event)';

/** The fix for a bwrap that cannot set up its namespaces, from what it printed. */
export function probeFailureHint(output: string[]): string {
  const text = output.join('\n');
  if (/No permissions to create new namespace/.test(text)) {
    return `this kernel does not allow unprivileged user namespaces: run \`sysctl -w kernel.unprivileged_userns_clone=1\` (persist it in /etc/sysctl.d/), or run clawos-build as root; ${FIX_NO_SANDBOX}`;
  }
  if (/max_\*_namespaces exceeded|ENOSPC/.test(text)) {
    return `user namespaces are limited to 0 (or the nesting depth is reached): run \`sysctl -w user.max_user_namespaces=15000\` (persist it in /etc/sysctl.d/), or run clawos-build as root outside a nested namespace; ${FIX_NO_SANDBOX}`;
  }
  if (/setting up uid map: Permission denied/.test(text)) {
    return `AppArmor forbids unprivileged user namespaces here: run \`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0\`, or run clawos-build as root; ${FIX_NO_SANDBOX}`;
  }
  if (/Creating new namespace failed: Operation not permitted/.test(text)) {
    return `namespaces are refused to this process (a container without CAP_SYS_ADMIN, or a seccomp filter on unshare): run clawos-build as root on the host or in a container started with --privileged; as a non-root user, enable \`sysctl -w kernel.unprivileged_userns_clone=1\`; ${FIX_NO_SANDBOX}`;
  }
  if (/loopback: Failed RTM_NEW/.test(text)) {
    return `network namespaces cannot be configured here (no lo in a new netns): run clawos-build as root on the host or in a --privileged container; ${FIX_NO_SANDBOX}`;
  }
  return `bubblewrap could not set up its sandbox (output above); install bubblewrap (\`apt-get install bubblewrap\`), enable user namespaces (\`sysctl -w kernel.unprivileged_userns_clone=1\`), or run clawos-build as root; ${FIX_NO_SANDBOX}`;
}

/**
 * Prove that bwrap can build the sandbox every task gets (read-only root, private
 * /tmp, new pid and net namespaces, no capabilities). Fails closed: an InfraError
 * saying how to fix it, never a quiet unsandboxed run.
 */
export async function probeSandbox(opts: { bwrap?: string; run?: Runner } = {}): Promise<SandboxMode> {
  const bwrap = opts.bwrap ?? 'bwrap';
  const runner = opts.run ?? procRun;
  const ver = await runner([bwrap, '--version'], { captureStdout: true, timeoutMs: 15_000 });
  if (!ver.ok) {
    const missing = ver.spawnError !== undefined || ver.exitCode === 127;
    throw new InfraError(
      missing ? `bubblewrap is not installed (${bwrap} not found); every task runs under it` : `${bwrap} --version failed: ${ver.tail.slice(-3).join(' | ')}`,
      missing ? `apt-get install bubblewrap (it is in specs/host-packages.txt, so bin/bootstrap installs it); ${FIX_NO_SANDBOX}` : probeFailureHint(ver.tail),
    );
  }
  const version = /bubblewrap\s+(\S+)/.exec(ver.stdout)?.[1] ?? ver.stdout.trim();
  // The flags every task gets; the writable bind is the host's /tmp, as the probe only runs `true`.
  const probe = await runner(
    bwrapArgv(bwrap, { task: 'probe', outDir: '/tmp', network: false }, { argv: ['true'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }),
    { timeoutMs: 15_000 },
  );
  if (!probe.ok) {
    const said = probe.tail.filter((l) => l.trim()).slice(-3).join(' | ');
    throw new InfraError(`bubblewrap cannot create the task sandbox: ${said || `exit ${probe.exitCode ?? probe.signal}`}`, probeFailureHint(probe.tail));
  }
  return { kind: 'bwrap', bwrap, version };
}

// --- diagnosis: what a failed sandboxed command ran into ---

export interface SandboxViolation {
  rule: 'RULE-001' | 'RULE-006';
  /** RULE-001: the absolute path it tried to write. */
  path?: string;
  /** The output line that shows it. */
  line: string;
  /** The one-line diagnosis. */
  message: string;
}

// strerror's text, or the errno name as Node prints it ("EROFS: read-only …"), so
// "erofs filesystem (FEATURE_VOLUMEID_EROFS)" from busybox's Kconfig is not a write error.
const READ_ONLY = /[Rr]ead-only file system|READ-ONLY FILE SYSTEM|\bEROFS:/;
const QUOTED = /'([^']+)'|‘([^’]+)’|"([^"]+)"|`([^`']+)'/g;
const PATHLIKE = /(?:^|[\s(=])((?:\/|\.\.?\/)[^\s'"‘’:,;()]*)/g;

/** The path a "Read-only file system" line is about, as printed (null when none is named). */
export function pathOfReadOnlyError(line: string): string | null {
  const at = line.search(READ_ONLY);
  if (at < 0) return null;
  const quoted: { text: string; index: number }[] = [];
  for (const m of line.matchAll(QUOTED)) {
    const text = m[1] ?? m[2] ?? m[3] ?? m[4] ?? '';
    if (text && !READ_ONLY.test(text)) quoted.push({ text, index: m.index ?? 0 });
  }
  // coreutils name the path before the error ("cannot touch '/x': Read-only…"),
  // Python and Node after it ("Read-only file system: '/x'", "EROFS: …, open '/x'").
  const before = quoted.filter((q) => q.index < at);
  if (before.length) return before[before.length - 1]!.text;
  // "bash: line 1: /x: Read-only …", "ld: cannot open output file a.out: Read-only …"
  const lead = /(?:^|\s)(\S+)\s+(\S+):\s*$/.exec(line.slice(0, at));
  if (lead && (lead[2]!.includes('/') || /^(file|directory)$/.test(lead[1]!))) return lead[2]!;
  if (quoted.length) return quoted[0]!.text;
  const bare: { text: string; index: number }[] = [];
  for (const m of line.matchAll(PATHLIKE)) if (m[1] && m[1] !== '/') bare.push({ text: m[1], index: m.index ?? 0 });
  const b = bare.filter((q) => q.index < at);
  if (b.length) return b[b.length - 1]!.text;
  return bare[0]?.text ?? null;
}

/** Output of a command that reached for a network its sandbox does not have. */
const NETWORK_DENIED = [
  /Network is unreachable/i,
  /\bENETUNREACH\b/,
  /Temporary failure in name resolution/i,
  /\bEAI_AGAIN\b/,
  /Could not resolve host/i,
  /Temporary failure resolving/i,
  /unable to resolve host address/i,
  /Couldn't connect to server/i,
];

function writableList(policy: SandboxPolicy): string {
  const dirs = [policy.outDir, ...(policy.writable ?? [])];
  return dirs.length === 1 ? dirs[0]! : `${dirs.slice(0, -1).join(', ')}, ${dirs[dirs.length - 1]}`;
}

/** Diagnose one line of a sandboxed command's output; null when it shows no violation. */
export function diagnoseLine(policy: SandboxPolicy, line: string, cwd: string = policy.outDir): SandboxViolation | null {
  if (READ_ONLY.test(line)) {
    const raw = pathOfReadOnlyError(line);
    const path = raw === null ? null : isAbsolute(raw) ? raw : resolve(cwd, raw);
    const what = path ?? `(no path named) ${line.trim()}`;
    return {
      rule: 'RULE-001',
      ...(path ? { path } : {}),
      line,
      message: `RULE-001: ${policy.task} wrote outside its output directory: ${what} (only ${writableList(policy)} and a private /tmp are writable)`,
    };
  }
  if (!policy.network && NETWORK_DENIED.some((re) => re.test(line))) {
    const where = policy.specFile ? ` in ${policy.specFile}` : '';
    return {
      rule: 'RULE-006',
      line,
      message: `RULE-006: ${policy.task} reached for the network, but network: true is not declared${where}, so its sandbox has none: ${line.trim()}`,
    };
  }
  return null;
}

/** The first violation in a failed command's output (RunResult.tail), or null. */
export function diagnoseSandboxFailure(policy: SandboxPolicy, lines: readonly string[], cwd?: string): SandboxViolation | null {
  for (const l of lines) {
    const v = diagnoseLine(policy, l, cwd);
    if (v) return v;
  }
  return null;
}

/**
 * Watches every output line of a task's commands (a sink tee), so a violation
 * printed long before the end of a big build's output is still found.
 */
export class ViolationWatch {
  private found: SandboxViolation | null = null;
  constructor(readonly policy: SandboxPolicy) {}
  /** Feed one output line; `cwd` resolves relative paths (default: the output dir). */
  line(line: string, cwd?: string): void {
    if (!this.found) this.found = diagnoseLine(this.policy, line, cwd);
  }
  /** The first violation seen, if any. */
  get first(): SandboxViolation | null {
    return this.found;
  }
}
