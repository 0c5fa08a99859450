/**
 * clawos-build's command line. The only place that prints results and maps
 * errors to exit codes; everything else returns values or throws one of the
 * three error classes.
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { InfraError, InternalError, UserError, formatLocation } from '../lib/errors.js';
import { loadTasks } from '../pipeline/load-tasks.js';
import { buildGraph } from '../pipeline/graph.js';
import { formatDiagnostic } from '../pipeline/yaml-source.js';
import { builtinSteps } from '../pipeline/steps/index.js';
import { chooseMode, createReporter, formatDuration } from '../pipeline/reporter.js';
import { loadGateSpecs } from '../pipeline/gates.js';
import { runPhases, type PhaseResult } from '../pipeline/run-phases.js';
import { clawosVersion, loadValidCatalog, openRun, repoRootDir, selectArches } from '../pipeline/session.js';
import { acquireBuildLock } from '../pipeline/build-lock.js';
import { PHASES, type Phase } from '../pipeline/task-spec.js';
import { bootCommand } from '../pipeline/boot-command.js';
import { flashCommand } from './flash-command.js';
import { doctorCommand } from './doctor-command.js';
import { finishRun, type RunFinish } from '../pipeline/run-phases.js';
import { VAULT_COMMANDS, VAULT_USAGE, vaultCommand } from './vault-commands.js';
import { defaultKeyDir, defaultTrustFile } from '../vault/key-dir.js';

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
${VAULT_USAGE}

options:
  --arch LIST         architectures, comma-separated (default: x86_64,aarch64)
  -j, --jobs N        task instances run at once, and make -j for builds (default: CPU count)
  --build-dir DIR     build directory (default: ./build)
  --log-dir DIR       agent logs (default: <build-dir>/logs)
  --config FILE       local configuration (default: ./clawos-build.config.yaml if present)
  --json              machine-readable output only
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
  const known = ['validate', 'plan', 'p1', 'p2', 'p3', 'p4', 'all', 'boot', 'flash', 'doctor', 'status', 'help'];
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (command === 'help') return 'help';
  if (positionals.length && command !== 'flash') throw new UsageError(`unexpected argument "${positionals[0]}" for ${command}`);
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
  };
}

function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

async function cmdValidate(p: Parsed, repoRoot: string): Promise<number> {
  const steps = builtinSteps();
  const { catalog, diagnostics } = await loadTasks({ repoRoot, stepNames: new Set(steps.keys()) });
  await selectArches(repoRoot, p.arch);
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

