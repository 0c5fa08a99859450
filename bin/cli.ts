/**
 * clawos-build's command line. The only place that prints results and maps
 * errors to exit codes; everything else returns values or throws one of the
 * three error classes.
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { run as runProcess } from '../lib/proc.js';
import { InfraError, InternalError, UserError, formatLocation } from '../lib/errors.js';
import { loadTasks } from '../pipeline/catalog/load-tasks.js';
import { buildGraph } from '../pipeline/catalog/graph.js';
import { formatDiagnostic } from '../lib/yaml-source.js';
import { builtinSteps } from '../pipeline/steps/index.js';
import { formatDuration } from '../lib/format.js';
import { chooseMode, createReporter } from '../pipeline/run/reporter.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import { runPhases, type PhaseResult } from '../pipeline/run/phases.js';
import { clawosVersion, loadValidCatalog, openRun, repoRootDir, selectArches } from '../pipeline/run/session.js';
import { acquireBuildLock } from '../pipeline/run/build-lock.js';
import { PHASES, type Phase } from '../pipeline/catalog/task-spec.js';
import { bootCommand } from './commands/boot.js';
import { flashCommand } from './commands/flash.js';
import { doctorCommand } from './commands/doctor.js';
import { finishRun, type RunFinish } from '../pipeline/run/phases.js';
import { VAULT_COMMANDS, VAULT_USAGE, vaultCommand } from './commands/vault.js';
import { defaultKeyDir, defaultTrustFile } from '../vault/key-dir.js';
import { benchCommand } from './commands/bench.js';
import { explainCommand } from './commands/explain.js';
import { seccompCommand } from './commands/seccomp.js';
import { REPORT_USAGE, reportMain } from './commands/report.js';
import { RELEASE_USAGE, releaseMain } from './commands/release.js';
import { auditSpecDiagnostics } from '../pipeline/security/kconfig-audit-spec.js';
import { securityLayersDiagnostics } from '../pipeline/security/security-report.js';
import { DEFAULT_BACKEND } from '../pipeline/catalog/backends.js';
import { specFreezeDiagnostics } from '../pipeline/p1-specs/spec-check.js';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  invalidInput: 3,
  infra: 4,
  internal: 70,
  interrupted: 130,
} as const;

const USAGE = `usage: clawos-build <command> [options]

commands:
  validate            check every task spec; report every error as file:line:col
  lock [--update [NAME[=VERSION] ...]]
                      what the mirror would change in inputs.lock.yaml (exit 1 if anything);
                      --update re-resolves and rewrites it, printing the diff
  plan                print the task graph in execution order (--json for machines)
  p1 | p2 | p3 | p4   run one phase and its gate (the previous gate must have passed)
  all                 run P1 to P4, stopping at the first NO-GO gate
  boot                boot an ISO under QEMU and check it: --iso FILE --arch ARCH [--firmware bios|uefi|NAME]
                      boot lab: [--repeat N] [-j N boots at once] [--until-fail] [--junit FILE]
                      (records, summary.json, junit.xml in <build-dir>/boots/<time>/)
  flash ISO DEVICE    write a vouched-for ISO to a whole disk, then read it back and compare:
                      [--bundle DIR|TAR --trust keys.json | --sha256 HEX] [--yes] [--allow-file]
  doctor              check the host has every tool, file and package the build needs [--fix]
  status              show the latest result of every task and gate, from the vault's event chains
  explain TASK[@ARCH] say why a task instance would re-run (the input, spec or tool that changed), or that it would not
  bench               G-08 by hand: ClawOS's kernel against Debian's stock kernel, same initramfs and QEMU machine
                      [--runs N] (boots per kernel, default 3); prints the ratio table per arch
  seccomp profile [--whitelist FILE] -- CMD...
                      run CMD under strace; syscalls used but not whitelisted, and whitelisted but unused
${REPORT_USAGE}
${RELEASE_USAGE}
${VAULT_USAGE}

options:
  --arch LIST         architectures, comma-separated (default: x86_64,aarch64)
  -j, --jobs N        task instances run at once, and make -j for builds (default: CPU count)
  --build-dir DIR     build directory (default: ./build)
  --log-dir DIR       agent logs (default: <build-dir>/logs)
  --config FILE       local configuration (default: ./clawos-build.config.yaml if present)
  --json              machine-readable output only
  --rootfs-backend B  busybox (default, offline) or buildroot (needs --buildroot)
  --buildroot P       a Buildroot source dir or release tarball (with --buildroot-sha256 HEX for a tarball)
  --no-sandbox        run tasks without bubblewrap (recorded in every task's vault event)
  -h, --help          this help
  --version           print the version

exit codes: 0 ok · 1 a task, gate or boot failed · 2 usage error · 3 invalid input (specs, config, state)
            4 infrastructure error (missing tool, firmware, disk) · 70 internal error · 130 interrupted`;

const DEFAULT_ARCHES = 'x86_64,aarch64';

interface Parsed {
  command: string;
  positionals: string[];
  arch: string[];
  jobs: number;
  buildDir: string;
  logDir?: string;
  config?: string;
  json: boolean;
  iso?: string;
  firmware?: string;
  repeat: number;
  untilFail: boolean;
  junit?: string;
  yes: boolean;
  allowFile: boolean;
  sha256?: string;
  bundle?: string;
  trust?: string;
  fix: boolean;
  runs: number;
  noSandbox: boolean;
  rootfsBackend: string;
  buildroot?: string;
  buildrootSha256?: string;
}

class UsageError extends Error {}

export function parseCli(argv: string[]): Parsed | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        arch: { type: 'string' },
        jobs: { type: 'string', short: 'j' },
        'build-dir': { type: 'string' },
        'log-dir': { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean' },
        iso: { type: 'string' },
        firmware: { type: 'string' },
        repeat: { type: 'string' },
        'until-fail': { type: 'boolean' },
        junit: { type: 'string' },
        yes: { type: 'boolean' },
        'allow-file': { type: 'boolean' },
        sha256: { type: 'string' },
        bundle: { type: 'string' },
        trust: { type: 'string' },
        fix: { type: 'boolean' },
        runs: { type: 'string' },
        'no-sandbox': { type: 'boolean' },
        'rootfs-backend': { type: 'string' },
        buildroot: { type: 'string' },
        'buildroot-sha256': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/, ''));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  const [command, ...positionals] = parsed.positionals;
  if (!command) throw new UsageError('no command given');
  const known = ['validate', 'plan', 'p1', 'p2', 'p3', 'p4', 'all', 'boot', 'flash', 'doctor', 'status', 'explain', 'bench', 'help'];
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (command === 'help') return 'help';
  if (command === 'explain' && positionals.length !== 1) throw new UsageError('explain takes one task: TASK or TASK@ARCH (e.g. A-01@x86_64)');
  if (positionals.length && command !== 'flash' && command !== 'explain') throw new UsageError(`unexpected argument "${positionals[0]}" for ${command}`);
  let jobs = availableParallelism();
  if (v.jobs !== undefined) {
    if (!/^[1-9]\d*$/.test(v.jobs)) throw new UsageError(`-j/--jobs takes a positive whole number, not "${v.jobs}"`);
    jobs = Number(v.jobs);
  }
  let repeat = 1;
  if (v.repeat !== undefined) {
    if (!/^[1-9]\d*$/.test(v.repeat)) throw new UsageError(`--repeat takes a positive whole number, not "${v.repeat}"`);
    repeat = Number(v.repeat);
  }
  const arch = (v.arch ?? DEFAULT_ARCHES).split(',').map((s) => s.trim()).filter(Boolean);
  if (!arch.length) throw new UsageError('--arch needs at least one architecture');
  if (command !== 'boot' && (v.iso || v.firmware || v.repeat)) throw new UsageError('--iso, --firmware and --repeat go with the boot command');
  if (command !== 'boot' && (v['until-fail'] || v.junit)) throw new UsageError('--until-fail and --junit go with the boot command');
  if (command !== 'flash' && (v.yes || v['allow-file'] || v.sha256 || v.bundle || v.trust)) throw new UsageError('--yes, --allow-file, --sha256, --bundle and --trust go with the flash command');
  if (command !== 'doctor' && v.fix) throw new UsageError('--fix goes with the doctor command');
  let runs = 3;
  if (v.runs !== undefined) {
    if (command !== 'bench') throw new UsageError('--runs goes with the bench command');
    if (!/^[1-9]\d*$/.test(v.runs)) throw new UsageError(`--runs takes a positive whole number, not "${v.runs}"`);
    runs = Number(v.runs);
  }
  const isRun = ['p1', 'p2', 'p3', 'p4', 'all'].includes(command);
  if (!isRun && (v['no-sandbox'] || v['rootfs-backend'] || v.buildroot || v['buildroot-sha256'])) {
    throw new UsageError('--no-sandbox, --rootfs-backend, --buildroot and --buildroot-sha256 go with p1..p4 and all');
  }
  const rootfsBackend = v['rootfs-backend'] ?? DEFAULT_BACKEND;
  if ((v.buildroot || v['buildroot-sha256']) && rootfsBackend !== 'buildroot') throw new UsageError('--buildroot and --buildroot-sha256 go with --rootfs-backend buildroot');
  if (v['buildroot-sha256'] !== undefined && !/^[0-9a-f]{64}$/.test(v['buildroot-sha256'])) throw new UsageError(`--buildroot-sha256 takes 64 lowercase hex digits, not "${v['buildroot-sha256']}"`);
  return {
    command,
    positionals,
    arch,
    jobs,
    buildDir: v['build-dir'] ?? 'build',
    logDir: v['log-dir'],
    config: v.config,
    json: !!v.json,
    iso: v.iso,
    firmware: v.firmware,
    repeat,
    untilFail: !!v['until-fail'],
    junit: v.junit,
    yes: !!v.yes,
    allowFile: !!v['allow-file'],
    sha256: v.sha256,
    bundle: v.bundle,
    trust: v.trust,
    fix: !!v.fix,
    runs,
    noSandbox: !!v['no-sandbox'],
    rootfsBackend,
    buildroot: v.buildroot,
    buildrootSha256: v['buildroot-sha256'],
  };
}

function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

async function cmdValidate(p: Parsed, repoRoot: string): Promise<number> {
  const steps = builtinSteps();
  const { catalog, diagnostics } = await loadTasks({ repoRoot, stepNames: new Set(steps.keys()) });
  await selectArches(repoRoot, p.arch);
  // The audit rules, waivers and security layers are data too: checked here, with file:line:col.
  const allArches = [...(await selectArches(repoRoot, null)).keys()];
  diagnostics.push(...(await auditSpecDiagnostics(repoRoot, allArches)), ...(await securityLayersDiagnostics(repoRoot)));
  // The P1 specs the freeze tasks name: schema and spec-level rules (a clean catalog only: they need its tasks).
  if (!diagnostics.length) diagnostics.push(...(await specFreezeDiagnostics(catalog.tasks.values(), repoRoot)));
  if (p.json) {
    printJson({ ok: diagnostics.length === 0, tasks: catalog.tasks.size, errors: diagnostics });
  } else {
    for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    const required = [...catalog.tasks.values()].filter((t) => !t.spec.optional).length;
    process.stderr.write(
      diagnostics.length
        ? `${diagnostics.length} error(s) in ${catalog.tasks.size} valid task spec(s)\n`
        : `${catalog.tasks.size} task specs valid (${required} required, ${catalog.tasks.size - required} optional)\n`,
    );
  }
  return diagnostics.length ? EXIT.invalidInput : EXIT.ok;
}

function actionOf(spec: { uses?: string; run?: string; component?: string; pending?: string }): string {
  if (spec.uses) return `uses ${spec.uses}`;
  if (spec.run) return 'run';
  if (spec.component) return `component ${spec.component}`;
  return 'pending';
}

async function cmdPlan(p: Parsed, repoRoot: string): Promise<number> {
  const catalog = await loadValidCatalog(repoRoot);
  const arches = await selectArches(repoRoot, p.arch);
  const g = buildGraph(catalog.tasks, [...arches.keys()]);
  const rows = g.order.map((i, n) => ({
    order: n + 1,
    id: i.id,
    task_id: i.task.spec.task_id,
    arch: i.arch,
    phase: i.task.spec.phase,
    agent: i.task.spec.agent,
    title: i.task.spec.title,
    action: actionOf(i.task.spec),
    depends_on: i.deps,
    optional: !!i.task.spec.optional,
  }));
  if (p.json) {
    printJson({ arches: g.arches, instances: rows });
    return EXIT.ok;
  }
  let phase = '';
  for (const r of rows) {
    if (r.phase !== phase) {
      phase = r.phase;
      process.stdout.write(`${phase}\n`);
    }
    process.stdout.write(
      `  ${String(r.order).padStart(3)}. ${r.id.padEnd(14)} ${r.agent.padEnd(16)} ${r.action.padEnd(24)} ${r.title}${
        r.depends_on.length ? `  <- ${r.depends_on.join(', ')}` : ''
      }\n`,
    );
  }
  process.stdout.write(`${rows.length} task instances for ${g.arches.join(', ')}\n`);
  return EXIT.ok;
}

async function cmdRun(p: Parsed, repoRoot: string, phases: Phase[]): Promise<number> {
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const mode = chooseMode({ json: p.json, isTTY: !!process.stderr.isTTY, ci: !!process.env.CI });
  const reporter = createReporter(mode);
  const release = await acquireBuildLock(resolve(p.buildDir));
  const started = Date.now();
  let results: PhaseResult[] = [];
  let finish: RunFinish | undefined;
  const keyDir = defaultKeyDir();
  try {
    // Every locked input first, outside the tasks: a mirror problem stops the run before anything is built.
    const { prefetchLocked } = await import('../pipeline/inputs/prefetch.js');
    const { lockOf } = await import('../pipeline/inputs/debs.js');
    const lock = await lockOf({ repoRoot });
    const arches = await selectArches(repoRoot, p.arch);
    const got = await prefetchLocked({ run: (a, o) => runProcess(a, o), cacheDir: join(resolve(p.buildDir), 'cache'), log: () => {}, repoRoot }, lock, [...arches.values()].map((a) => a.debian_arch));
    if (mode !== 'json') {
      process.stderr.write(`inputs: ${lock.file} sha256 ${lock.sha256.slice(0, 16)}: ${got.fetched.length} fetched, ${got.cached.length} already in the download cache, ${got.host.length} served by the host's matching copy\n`);
    }
    const rc = await openRun({
      repoRoot,
      buildDir: p.buildDir,
      logDir: p.logDir,
      arches: p.arch,
      jobs: p.jobs,
      configFile: p.config,
      emit: reporter.sink,
      signal: ac.signal,
      heartbeatMs: mode === 'plain' ? 30_000 : 0,
      phases,
      noSandbox: p.noSandbox,
      ...(p.rootfsBackend !== DEFAULT_BACKEND
        ? {
            backend: {
              name: p.rootfsBackend,
              params: { ...(p.buildroot ? { buildroot: resolve(p.buildroot) } : {}), ...(p.buildrootSha256 ? { buildroot_sha256: p.buildrootSha256 } : {}) },
            },
          }
        : {}),
    });
    let error: string | undefined;
    try {
      results = await runPhases(rc, phases, await loadGateSpecs(repoRoot));
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      // The run's chain always ends with run-end, even when a phase refused to start.
      finish = await finishRun(rc, results, { keyDir, ...(error !== undefined ? { error } : {}) });
    }
  } finally {
    await reporter.finish();
    await release();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
  const records = results.flatMap((r) => r.records);
  const bad = records.filter((r) => !['PASS', 'NOT_CONFIGURED'].includes(r.status));
  const nogo = results.filter((r) => r.gate.recommendation !== 'GO');
  const ranAll = results.length === phases.length;
  const code = ac.signal.aborted ? EXIT.interrupted : bad.length || nogo.length || !ranAll ? EXIT.failed : EXIT.ok;
  if (p.json) {
    printJson({
      ok: code === EXIT.ok,
      exit_code: code,
      duration_ms: Date.now() - started,
      build_dir: resolve(p.buildDir),
      run_id: finish?.runId,
      events: finish?.eventsFile,
      bundle: finish?.bundle
        ? { dir: finish.bundle.dir, signed: true, subjects: finish.bundle.subjects.length, manifest_sha256: finish.bundle.manifestSha256, log_root: finish.bundle.logRootB64u }
        : { signed: false, note: finish?.bundleNote },
      gates: results.map((r) => ({ phase: r.phase, recommendation: r.gate.recommendation, blockers: r.gate.blockers, coverage: r.gate.coverage })),
      tasks: records.map((r) => ({
        id: r.id,
        status: r.status,
        reason: r.reason,
        message: r.message,
        duration_ms: r.duration_ms,
        ran: Date.parse(r.finished_at) >= started,
      })),
    });
  } else {
    const ran = records.filter((r) => Date.parse(r.finished_at) >= started).length;
    process.stderr.write(
      `${code === EXIT.ok ? 'done' : ac.signal.aborted ? 'interrupted' : 'FAILED'} in ${formatDuration(Date.now() - started)}: ` +
        results.map((r) => `${r.phase} ${r.gate.recommendation}`).join(', ') +
        ` (${records.length} task instances, ${ran} run, ${records.length - ran} up to date; build dir ${resolve(p.buildDir)})\n`,
    );
    if (finish) process.stderr.write(`vault: run ${finish.runId}, events ${finish.eventsFile}\n`);
    if (finish?.bundle) {
      process.stderr.write(
        `bundle: ${finish.bundle.dir} (${finish.bundle.subjects.length} attested subjects, ${finish.bundle.manifest.files.length} files; ` +
          `signed by release key ${finish.releaseKeyId?.slice(0, 16)}; log root ${finish.bundle.logRootB64u})\n` +
          `verify: clawos-build verify ${finish.bundle.dir} --trust ${defaultTrustFile(keyDir)}\n`,
      );
    } else if (finish?.bundleNote) process.stderr.write(`bundle: ${finish.bundleNote}\n`);
  }
  return code;
}

export async function main(argv: string[]): Promise<number> {
  const io = { repoRoot: repoRootDir(), print: (s: string) => process.stdout.write(s), printErr: (s: string) => process.stderr.write(s) };
  // report, release and seccomp parse their own words and options.
  try {
    if (argv[0] === 'report') return await reportMain(argv.slice(1), io);
    if (argv[0] === 'release') return await releaseMain(argv.slice(1), io);
    if (argv[0] === 'seccomp') return await seccompMain(argv.slice(1), io);
  } catch (err) {
    return reportError(err, argv.includes('--json'));
  }
  if (argv[0] === 'lock') {
    try {
      const { lockCommand } = await import('./commands/lock.js');
      return await lockCommand(argv.slice(1), repoRootDir(), io);
    } catch (err) {
      return reportError(err, argv.includes('--json'));
    }
  }
  // The vault's commands (keys, spec, verify, export) parse their own words and options.
  if (argv[0] && (VAULT_COMMANDS as readonly string[]).includes(argv[0]) && argv[0] !== 'status') {
    try {
      return await vaultCommand(argv, { repoRoot: repoRootDir(), print: (s) => process.stdout.write(s), printErr: (s) => process.stderr.write(s) });
    } catch (err) {
      return reportError(err, argv.includes('--json'));
    }
  }
  let p: Parsed | 'help' | 'version';
  try {
    p = parseCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`clawos-build: ${err.message}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const repoRoot = repoRootDir();
  if (p === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (p === 'version') {
    process.stdout.write(`clawos-build ${await clawosVersion(repoRoot)}\n`);
    return EXIT.ok;
  }
  try {
    switch (p.command) {
      case 'status':
        return await vaultCommand(['status', '--build-dir', p.buildDir, ...(p.json ? ['--json'] : [])], { repoRoot, print: (s) => process.stdout.write(s), printErr: (s) => process.stderr.write(s) });
      case 'validate':
        return await cmdValidate(p, repoRoot);
      case 'plan':
        return await cmdPlan(p, repoRoot);
      case 'explain':
        return await explainCommand({ ...p, repoRoot, print: io.print, printErr: io.printErr });
      case 'bench':
        return await benchCommand({ repoRoot, buildDir: p.buildDir, arch: p.arch, runs: p.runs, json: p.json, print: io.print, printErr: io.printErr });
      case 'flash':
        return await flashCommand(p);
      case 'doctor':
        return await doctorCommand({ repoRoot, buildDir: p.buildDir, json: p.json, fix: p.fix });
      case 'boot':
        return await bootCommand({ ...p, repoRoot, print: (s) => process.stdout.write(s), printErr: (s) => process.stderr.write(s) });
      case 'all':
        return await cmdRun(p, repoRoot, [...PHASES]);
      default:
        return await cmdRun(p, repoRoot, [p.command.toUpperCase() as Phase]);
    }
  } catch (err) {
    return reportError(err, p.json);
  }
}

/** `seccomp profile [--whitelist FILE] [--build-dir DIR] [--json] -- CMD...`: CMD is everything after `--`. */
async function seccompMain(argv: string[], io: { print(s: string): void; printErr(s: string): void }): Promise<number> {
  const dash = argv.indexOf('--');
  const before = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  let parsed;
  try {
    parsed = parseArgs({ args: before, allowPositionals: true, strict: true, options: { whitelist: { type: 'string' }, 'build-dir': { type: 'string' }, json: { type: 'boolean' } } });
  } catch (err) {
    io.printErr(`clawos-build: ${(err as Error).message.replace(/\. To specify a positional argument.*$/, '')}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const [subcommand, ...extra] = parsed.positionals;
  if (extra.length) {
    io.printErr(`clawos-build: unexpected argument "${extra[0]}" for seccomp ${subcommand}: put the command after --\n`);
    return EXIT.usage;
  }
  return seccompCommand({
    subcommand,
    command,
    whitelist: parsed.values.whitelist,
    buildDir: parsed.values['build-dir'] ?? 'build',
    json: !!parsed.values.json,
    print: io.print,
    printErr: io.printErr,
  });
}

function reportError(err: unknown, json: boolean): number {
  if (err instanceof UserError || err instanceof InfraError) {
    const code = err instanceof UserError ? EXIT.invalidInput : EXIT.infra;
    if (json) printJson({ ok: false, exit_code: code, error: { kind: err.name, message: err.message, hint: err.hint, location: err instanceof UserError ? err.location : undefined } });
    else {
      const where = err instanceof UserError && err.location && !err.message.includes(formatLocation(err.location)) ? `${formatLocation(err.location)}: ` : '';
      process.stderr.write(`clawos-build: ${where}${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    }
    return code;
  }
  const e = err instanceof Error ? err : new InternalError(String(err));
  process.stderr.write(`clawos-build: internal error (a bug in clawos-build; please report it with this trace):\n${e.stack ?? e.message}\n`);
  return EXIT.internal;
}

