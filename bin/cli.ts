/**
 * clawos-build's command line: one table of commands. Each entry says what the
 * command is for, which options it takes and where its code is; --help, the
 * per-command help, docs/commands.md and the README's command table are all
 * generated from it. A command's module is imported only when that command runs,
 * so `--version` and `verify` do not pay for the pipeline's start-up.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { repoRootDir } from '../lib/repo-root.js';
import { allOptions, findCommand, parseCommand, positiveInt, type CommandSpec, type OptionGroup, type OptionSpec, type ParsedArgs } from './args.js';
import type { CommandIo, CommandRun } from './command-io.js';
import { EXIT, EXIT_MEANINGS, UsageError, reportError } from './exit.js';

export interface CommandEntry extends CommandSpec {
  /** The command's code, imported on demand. */
  load: () => Promise<CommandRun>;
  /** Map a thrown VaultError to exit 3 (the vault's own commands). */
  vaultErrors?: boolean;
}

// Options several commands share, declared once.
const ARCH: OptionSpec = {
  name: 'arch',
  type: 'string',
  value: 'LIST',
  help: 'architectures, comma-separated (default: x86_64,aarch64)',
  default: () => ['x86_64', 'aarch64'],
  parse: (raw) => {
    const arch = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (!arch.length) throw new UsageError('--arch needs at least one architecture');
    return arch;
  },
};
const JOBS: OptionSpec = {
  name: 'jobs',
  short: 'j',
  type: 'string',
  value: 'N',
  help: 'task instances run at once, and make -j for builds (default: CPU count)',
  default: () => availableParallelism(),
  parse: positiveInt('-j/--jobs'),
};
const BUILD_DIR: OptionSpec = { name: 'build-dir', type: 'string', value: 'DIR', help: 'build directory (default: ./build)', default: 'build' };
const LOG_DIR: OptionSpec = { name: 'log-dir', type: 'string', value: 'DIR', help: 'agent logs (default: <build-dir>/logs)' };
const CONFIG: OptionSpec = { name: 'config', type: 'string', value: 'FILE', help: 'local configuration (default: ./clawos-build.config.yaml if present)' };
const JSON_OUT: OptionSpec = { name: 'json', type: 'boolean', help: 'machine-readable output only: one JSON document on stdout' };

/** What every build-side command accepts. */
const BUILD_OPTIONS: OptionGroup = { options: [ARCH, JOBS, BUILD_DIR, LOG_DIR, CONFIG, JSON_OUT] };
/** What the vault's and the release engineer's commands accept. */
const OUTPUT_OPTIONS: OptionGroup = { options: [BUILD_DIR, JSON_OUT] };
/** The key dir and trust file of keys and spec. */
const KEY_OPTIONS: OptionGroup = {
  owner: 'keys and spec',
  options: [
    { name: 'key-dir', type: 'string', value: 'DIR', help: 'the key dir (default $CLAWOS_KEY_DIR or ~/.config/clawos-build/keys)' },
    { name: 'trust', type: 'string', value: 'FILE', help: 'the trust file (default <key-dir>/keys.json)' },
  ],
};

const RUN_OPTIONS: OptionGroup = {
  owner: 'p1..p4 and all',
  options: [
    { name: 'no-sandbox', type: 'boolean', help: "run tasks without bubblewrap (recorded in every task's vault event)" },
    { name: 'remote-cache', type: 'string', value: 'URL', help: 'a Bazel remote-cache HTTP server (/ac/, /cas/): pull trusted builders\' results, push PASSes (default: the config file\'s remote_cache)' },
    { name: 'remote-cache-readonly', type: 'boolean', help: 'pull from the remote cache, never push (CI consumers)' },
    { name: 'compiler-cache', type: 'boolean', help: "compile the kernels through the shared compiler cache (ccache in ~/.cache/clawos-build/ccache; off by default: a cold cache slows a build, a warm one speeds rebuilds in any folder; the same bytes either way)" },
    { name: 'no-compiler-cache', type: 'boolean', help: "compile the kernels without it, whatever the config file's compiler_cache says" },
    {
      name: 'compiler-cache-remote',
      type: 'string',
      value: 'URL',
      help: "ccache's remote storage on redis: redis://[PASSWORD@]HOST[:PORT] or redis+unix:PATH (default: the config file's compiler_cache.remote)",
      parse: (raw) => {
        if (!/^redis(\+unix)?:/.test(raw)) throw new UsageError(`--compiler-cache-remote takes a redis URL (redis://HOST:PORT or redis+unix:PATH), not "${raw.replace(/\/\/[^@/]*@/, '//')}"`);
        return raw;
      },
    },
    { name: 'icecream', type: 'boolean', help: "compile kernels through this machine's iceccd and its icecream cluster; the same kernel bytes as a plain local build (default: the config file's icecream)" },
    { name: 'icecream-jobs', type: 'string', value: 'N', help: 'make -j while compiling through the cluster (default: 4 x -j); implies --icecream', parse: positiveInt('--icecream-jobs') },
    { name: 'rootfs-backend', type: 'string', value: 'B', help: 'busybox (default, offline), buildroot (needs --buildroot), or aya (B-08 from the aya-ebpf component)', default: 'busybox' },
    { name: 'buildroot', type: 'string', value: 'P', help: 'a Buildroot source dir or release tarball (with --buildroot-sha256 HEX for a tarball)' },
    {
      name: 'buildroot-sha256',
      type: 'string',
      value: 'HEX',
      help: "the Buildroot tarball's sha256",
      parse: (raw) => {
        if (!/^[0-9a-f]{64}$/.test(raw)) throw new UsageError(`--buildroot-sha256 takes 64 lowercase hex digits, not "${raw}"`);
        return raw;
      },
    },
  ],
};

/** A whole number from 0 up (--retries). */
function nonNegativeInt(flag: string): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw)) throw new UsageError(`${flag} takes a whole number (0 or more), not "${raw}"`);
    return Number(raw);
  };
}

function checkRun(a: ParsedArgs): void {
  if (a.noCompilerCache && (a.compilerCacheRemote || a.compilerCache)) throw new UsageError(`--no-compiler-cache and ${a.compilerCache ? '--compiler-cache' : '--compiler-cache-remote'} contradict each other: give one`);
  if ((a.buildroot || a.buildrootSha256) && a.rootfsBackend !== 'buildroot') throw new UsageError('--buildroot and --buildroot-sha256 go with --rootfs-backend buildroot');
}

const runPhases = () => import('./commands/run-phases.js').then((m) => m.run);
const phaseEntry = (n: 1 | 2 | 3 | 4): CommandEntry => ({
  name: `p${n}`,
  summary: `run phase P${n} and its gate (the previous gate must have passed)`,
  options: [BUILD_OPTIONS, RUN_OPTIONS],
  check: checkRun,
  load: runPhases,
});

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'help',
    summary: 'this help, or a command\'s help with all its options',
    words: '[COMMAND]',
    positionals: { max: 1 },
    options: [],
    load: async () => async (a, io) => {
      const topic = COMMANDS.find((c) => c.name === a.positionals[0]);
      io.print(`${topic ? commandHelp(topic) : usage()}\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'validate',
    summary: 'check every task spec; report every error as file:line:col',
    options: [BUILD_OPTIONS],
    load: () => import('./commands/validate.js').then((m) => m.run),
  },
  {
    name: 'plan',
    summary: 'print the task graph in execution order (--json for machines)',
    options: [BUILD_OPTIONS],
    load: () => import('./commands/plan.js').then((m) => m.run),
  },
  phaseEntry(1),
  phaseEntry(2),
  phaseEntry(3),
  phaseEntry(4),
  {
    name: 'all',
    summary: 'run P1 to P4, stopping at the first NO-GO gate',
    options: [BUILD_OPTIONS, RUN_OPTIONS],
    check: checkRun,
    load: runPhases,
  },
  {
    name: 'boot',
    summary: 'boot an ISO under QEMU and check it, once or as a boot lab',
    details: ['records, summary.json, junit.xml in <build-dir>/boots/<time>/'],
    options: [
      {
        owner: 'the boot command',
        options: [
          { name: 'iso', type: 'string', value: 'FILE', help: 'the ISO to boot' },
          { name: 'firmware', type: 'string', value: 'bios|uefi|NAME', help: "firmware variants of the arch's machine (default: every one)" },
          { name: 'repeat', type: 'string', value: 'N', help: 'rounds of boots (default 1)', default: 1, parse: positiveInt('--repeat') },
        ],
      },
      {
        owner: 'the boot command',
        options: [
          { name: 'until-fail', type: 'boolean', help: 'stop after the first round with a failing boot (needs --repeat N)' },
          { name: 'junit', type: 'string', value: 'FILE', help: 'also write the JUnit XML here' },
        ],
      },
      BUILD_OPTIONS,
    ],
    load: () => import('./commands/boot.js').then((m) => m.run),
  },
  {
    name: 'flash',
    summary: 'write a vouched-for ISO to a whole disk, then read it back and compare',
    words: 'ISO DEVICE',
    details: ['--json prints one JSON line per event, ending with {"event":"result",…}'],
    positionals: { max: Infinity },
    options: [
      {
        owner: 'the flash command',
        options: [
          { name: 'yes', type: 'boolean', help: 'do not ask before overwriting DEVICE' },
          { name: 'allow-file', type: 'boolean', help: 'DEVICE may be a regular file (an image)' },
          { name: 'sha256', type: 'string', value: 'HEX', help: "the ISO's expected sha256" },
          { name: 'bundle', type: 'string', value: 'DIR|TAR', help: 'a signed bundle that lists the ISO (with --trust)' },
          { name: 'trust', type: 'string', value: 'keys.json', help: 'the trusted public keys for --bundle' },
          { name: 'no-results-area', type: 'boolean', help: 'leave out the empty results area at the end of DEVICE (hardware results then only come back from a serial capture)' },
        ],
      },
      BUILD_OPTIONS,
    ],
    load: () => import('./commands/flash.js').then((m) => m.run),
  },
  {
    name: 'hw',
    summary: "hardware testers' results: read a stick, image or serial capture back, sign it with the tester key into the vault (G-07)",
    words: 'record DEVICE|IMAGE|SERIAL-LOG | prepare DEVICE | list',
    positionals: { max: 3 },
    details: [
      'hw record: exit 0 for a recorded PASS, 1 for a recorded FAIL or a refused source (no, empty, truncated or another ISO\'s results area: nothing recorded)',
      'hw prepare DEVICE --iso ISO: the empty results area for a stick written by hand (flash adds it itself)',
      'hw list: every record, whether it counts (trusted tester key, this build\'s ISOs) and G-07\'s verdict',
    ],
    options: [
      {
        owner: 'the hw command',
        options: [
          { name: 'iso', type: 'string', value: 'ISO', help: 'the ISO the results are for (needed for a serial capture, checked against a stick)' },
          { name: 'sha256', type: 'string', value: 'HEX', help: "the ISO's sha256 instead of --iso" },
        ],
      },
      KEY_OPTIONS,
      OUTPUT_OPTIONS,
    ],
    vaultErrors: true,
    load: () => import('./commands/hw.js').then((m) => m.run),
  },
  {
    name: 'lava',
    summary: 'board farms: LAVA jobs for every boot variant (export), run under the real lava-run (run), results judged into the vault (ingest)',
    words: 'export|run|ingest [RESULTS ...]',
    details: [
      'export: one job per arch and boot variant in --out (default <build-dir>/lava/jobs), for an ISO a verified bundle vouches for',
      'run: export, run each job with lava-run (root), retry a job that does not PASS, ingest; results in <build-dir>/lava/run-<time>/',
      'ingest RESULTS: folders holding job.yaml + lava-log.yaml (lava run\'s, or a server\'s: lavacli jobs definition/logs --raw)',
    ],
    positionals: { min: 1, max: Infinity, wrongCount: () => 'lava needs export, run or ingest' },
    options: [
      {
        owner: 'the lava command',
        options: [
          { name: 'out', type: 'string', value: 'DIR', help: 'where export writes the jobs, or run its jobs and results' },
          { name: 'iso', type: 'string', value: 'FILE', help: "the ISO (one --arch; default: the build's)" },
          { name: 'iso-url', type: 'string', value: 'URL', help: 'where a lab downloads the ISO ({arch}, {file} filled in; default file://ISO)' },
          { name: 'firmware', type: 'string', value: 'bios|uefi|NAME', help: "export, run: only these boot variants of each --arch's machine (default: every one)" },
          { name: 'allow-unverified', type: 'boolean', help: 'export an ISO no verified bundle vouches for (the jobs say so)' },
          { name: 'bundle', type: 'string', value: 'DIR|TAR', help: "the signed bundle that must list the ISO (default: the build's newest)" },
          { name: 'trust', type: 'string', value: 'keys.json', help: 'the trusted public keys to verify the bundle with' },
          { name: 'retries', type: 'string', value: 'N', help: 'run: runs of a job that did not PASS before it counts (default 1)', default: 1, parse: nonNegativeInt('--retries') },
          { name: 'lab', type: 'string', value: 'NAME', help: 'who ran the jobs, recorded with each verdict (default lava-run@<host>)' },
          {
            name: 'sha256',
            type: 'string',
            value: 'HEX',
            help: 'ingest: the sha256 of the ISO the results must be for (instead of --iso)',
            parse: (raw) => {
              if (!/^[0-9a-f]{64}$/.test(raw)) throw new UsageError(`--sha256 takes 64 lowercase hex digits, not "${raw}"`);
              return raw;
            },
          },
        ],
      },
      BUILD_OPTIONS,
    ],
    load: () => import('./commands/lava.js').then((m) => m.run),
  },
  {
    name: 'lock',
    summary: 'what the mirror would change in inputs.lock.yaml (exit 1 if anything); --update re-locks and prints the diff',
    words: '[NAME[=VERSION] ...]',
    positionals: { max: Infinity },
    details: ['without --update: package, locked version, version the mirror serves now; exit 4 if a locked version is no longer served', 'with --update: every input (or only NAME, optionally at VERSION) re-resolved; the lock rewritten atomically'],
    options: [{ owner: 'the lock command', options: [{ name: 'update', type: 'boolean', help: 're-resolve and rewrite inputs.lock.yaml, printing what changed' }] }, { options: [JSON_OUT] }],
    load: () => import('./commands/lock.js').then((m) => m.run),
  },
  {
    name: 'reproduce',
    summary: "rebuild a bundle from its recorded commit, lock and SOURCE_DATE_EPOCH in a fresh folder and compare every attested subject's sha256",
    words: 'BUNDLE',
    positionals: { min: 1, max: 1, wrongCount: (p) => (p.length ? `unexpected argument "${p[1]}" for reproduce` : 'reproduce needs a bundle directory') },
    details: [
      'PASS when every rebuilt kernel, initramfs, ISO and SBOM has the attested sha256; a diffoscope report for each that differs',
      'the checkout must be at the bundle\'s commit with no changes; the key dir must hold the module-signing key its kernels carry',
      'report: <out>/reproduce.json',
    ],
    options: [
      {
        owner: 'the reproduce command',
        options: [
          { name: 'out', type: 'string', value: 'DIR', help: 'a fresh folder for the rebuild (default ./build-reproduce-<run id>)' },
          { name: 'reuse-kernel', type: 'string', value: 'BUILD_DIR', help: "take the kernels over from this build (when their fingerprints match) and rebuild the rest: the cheaper check" },
        ],
      },
      KEY_OPTIONS,
      { options: [JOBS, JSON_OUT] },
    ],
    vaultErrors: true,
    load: () => import('./commands/reproduce.js').then((m) => m.run),
  },
  {
    name: 'doctor',
    summary: 'check the host has every tool, file and package the build needs',
    options: [{ owner: 'the doctor command', options: [{ name: 'fix', type: 'boolean', help: 'run the printed apt/dpkg commands (root only), then check again' }] }, BUILD_OPTIONS],
    load: () => import('./commands/doctor.js').then((m) => m.run),
  },
  {
    name: 'gc',
    summary: "remove content-store objects that no kept run, kept run's bundle, released bundle or state.json references, and print what it freed",
    details: ['event chains and bundles are never removed; a bundle keeps its files (hard links) either way'],
    options: [
      {
        owner: 'the gc command',
        options: [
          { name: 'keep-runs', type: 'string', value: 'N', help: 'the newest N runs keep their objects (default 3)', default: 3, parse: positiveInt('--keep-runs') },
          { name: 'dry-run', type: 'boolean', help: 'print what would be removed, remove nothing' },
        ],
      },
      OUTPUT_OPTIONS,
    ],
    load: () => import('./commands/gc.js').then((m) => m.run),
  },
  {
    name: 'status',
    summary: "show the latest result of every task and gate, from the vault's event chains",
    options: [BUILD_OPTIONS],
    vaultErrors: true,
    load: () => import('./commands/status.js').then((m) => m.run),
  },
  {
    name: 'explain',
    summary: 'say why a task instance would re-run (the input, spec or tool that changed), or that it would not',
    words: 'TASK[@ARCH]',
    positionals: { min: 1, max: 1, wrongCount: () => 'explain takes one task: TASK or TASK@ARCH (e.g. A-01@x86_64)' },
    options: [{ owner: 'the explain command', options: [{ name: 'remote-cache', type: 'string', value: 'URL', help: 'also ask this remote cache (read-only), as a run with --remote-cache would' }] }, BUILD_OPTIONS],
    load: () =>
      import('./commands/explain.js').then((m) => (a: ParsedArgs, io: CommandIo) =>
        m.explainCommand({
          repoRoot: io.repoRoot,
          buildDir: a.buildDir as string,
          positionals: a.positionals,
          arch: a.arch as string[],
          config: a.config as string | undefined,
          ...(a.remoteCache ? { remoteCache: a.remoteCache as string } : {}),
          json: !!a.json,
          print: io.print,
          printErr: io.printErr,
        }),
      ),
  },
  {
    name: 'bench',
    summary: "G-08 by hand: ClawOS's kernel against Debian's stock kernel, same initramfs and QEMU machine; bench boot: the ISO against the -kernel floor",
    words: '[stock|boot]',
    details: [
      'prints the ratio table per arch;',
      'bench boot: time to the final marker of the ISO and of the same kernel and initramfs',
      "booted with -kernel/-initrd by the same firmware, per boot variant, interleaved, as ISO/floor ratios",
    ],
    positionals: { max: 1, wrongCount: (p) => `unexpected argument "${p[1]}" for bench: bench takes stock (the default) or boot` },
    options: [
      {
        owner: 'the bench command',
        options: [
          { name: 'runs', type: 'string', value: 'N', help: 'boots per kernel, or per variant and mode for bench boot (default 3)', default: 3, parse: positiveInt('--runs') },
          { name: 'firmware', type: 'string', value: 'bios|uefi|NAME', help: "bench boot: the firmware variants of the arch's machine (default: every one)" },
        ],
      },
      BUILD_OPTIONS,
    ],
    check: (a) => {
      const mode = a.positionals[0] ?? 'stock';
      if (mode !== 'stock' && mode !== 'boot') throw new UsageError(`unknown bench "${mode}": bench takes stock (the default) or boot`);
      if (a.firmware && mode !== 'boot') throw new UsageError('--firmware goes with bench boot');
    },
    load: () => import('./commands/bench.js').then((m) => m.run),
  },
  {
    name: 'seccomp',
    summary: 'run CMD under strace; syscalls used but not whitelisted, and whitelisted but unused',
    words: 'profile',
    positionals: { max: 1, wrongCount: (p) => `unexpected argument "${p[1]}" for seccomp ${p[0]}: put the command after --` },
    passThrough: true,
    options: [
      { owner: 'the seccomp command', options: [{ name: 'whitelist', type: 'string', value: 'FILE', help: 'a compiled seccomp-filter.json (default: the build dir\'s, for this host\'s arch)' }] },
      OUTPUT_OPTIONS,
    ],
    load: () => import('./commands/seccomp.js').then((m) => m.run),
  },
  {
    name: 'report',
    summary: 'one self-contained HTML report of the recorded results (default <build-dir>/report.html)',
    details: ['--trust verifies the newest bundle; --metrics also writes a node_exporter textfile;', "--json prints the report's data instead of writing the HTML"],
    options: [
      {
        owner: 'the report command',
        options: [
          { name: 'out', type: 'string', value: 'FILE', help: 'where the HTML goes (default <build-dir>/report.html)' },
          { name: 'trust', type: 'string', value: 'keys.json', help: 'verify the newest bundle with these public keys' },
          { name: 'metrics', type: 'string', value: 'FILE.prom', help: 'also write a Prometheus node_exporter textfile' },
        ],
      },
      OUTPUT_OPTIONS,
    ],
    check: (a) => {
      if (a.json && a.out) throw new UsageError("--out and --json do not go together: --json prints the report's data instead of writing the HTML");
    },
    load: () => import('./commands/report.js').then((m) => m.run),
  },
  {
    name: 'release',
    summary: 'the release folder DIR/clawos-V/ (default <build-dir>/release, V from specs/release.yaml)',
    details: ['ISOs, SHA256SUMS, the signed bundle as a tar, gate and security reports, CHANGELOG.md;', 'refused unless gate P4 is GO and the newest bundle verifies with the trust file'],
    options: [
      {
        owner: 'the release command',
        options: [
          {
            name: 'trust',
            type: 'string',
            value: 'keys.json',
            help: 'the trusted public keys the bundle must verify with',
            required: 'release needs --trust FILE: the trusted public keys the bundle must verify with (never taken from the build)',
          },
          { name: 'version', type: 'string', value: 'V', help: 'the release version (default: specs/release.yaml)' },
          { name: 'out', type: 'string', value: 'DIR', help: 'where the release folder goes (default <build-dir>/release)' },
        ],
      },
      OUTPUT_OPTIONS,
    ],
    load: () => import('./commands/release.js').then((m) => m.run),
  },
  {
    name: 'keys',
    summary: 'make a key (keys init --role R: an Ed25519 vault key, the kernel module-signing key or the Secure Boot key), or list the keys and whether the trust file lists them',
    words: 'init|list',
    details: [
      'keys init: private key 0600, never printed; its public key is added to the trust file',
      'keys init --role secureboot --import KEY --cert CERT [--passphrase PASS]: use an existing Secure Boot key (stored decrypted, 0600) and its certificate',
    ],
    positionals: { max: 1 },
    options: [
      {
        owner: 'the keys command',
        options: [
          { name: 'role', type: 'string', value: 'release|security|core|tester|builder|module-signing|secureboot', help: 'the new key\'s role (keys init)' },
          { name: 'name', type: 'string', value: 'NAME', help: "the tester's name (keys init --role tester; every hardware record shows it)" },
          { name: 'import', type: 'string', value: 'KEY', help: 'keys init --role secureboot: import this PEM private key instead of making one' },
          { name: 'cert', type: 'string', value: 'CERT', help: 'with --import: the key\'s X.509 certificate (PEM or DER)' },
          { name: 'passphrase', type: 'string', value: 'PASS', help: 'with --import: the passphrase of an encrypted key' },
        ],
      },
      KEY_OPTIONS,
      OUTPUT_OPTIONS,
    ],
    vaultErrors: true,
    load: () => import('./commands/keys.js').then((m) => m.run),
  },
  {
    name: 'spec',
    summary: 'freeze the P1 specs and the audit data (every file of specs/p1 and specs/audit: its sha256, signed by a security AND a core key), or verify the record',
    words: 'freeze|verify',
    details: ['the record is specs/p1/freeze.dsse.json; spec verify checks it against specs/trust/keys.json and the specs as they are now'],
    positionals: { max: 1 },
    options: [KEY_OPTIONS, OUTPUT_OPTIONS],
    vaultErrors: true,
    load: () => import('./commands/spec.js').then((m) => m.run),
  },
  {
    name: 'verify',
    summary: 'verify a bundle offline: {ok, code, detail}; exit 0 only for PASS',
    words: 'BUNDLE|TAR',
    positionals: { min: 1, max: 1, wrongCount: (p) => (p.length ? `unexpected argument "${p[1]}" for verify` : 'verify needs a bundle directory or tar') },
    options: [
      {
        owner: 'the verify command',
        options: [
          {
            name: 'trust',
            type: 'string',
            value: 'FILE',
            help: 'the trusted public keys (never taken from the bundle)',
            required: 'verify needs --trust FILE (the trusted public keys; never taken from the bundle)',
          },
          { name: 'ledger', type: 'string', value: 'FILE', help: 'accepted run ids: a run already in it is a replay; a PASS is added' },
          { name: 'expect-min-release', type: 'string', value: 'V', help: 'refuse a release older than V' },
        ],
      },
      OUTPUT_OPTIONS,
    ],
    vaultErrors: true,
    load: () => import('./commands/verify.js').then((m) => m.run),
  },
  {
    name: 'export',
    summary: 'a bundle (default: the latest) as one deterministic tar, plus SHA256SUMS',
    details: ['the bundle is verified with --trust first: one that does not verify is not exported (exit 1)', "SHA256SUMS lists the tar and keeps the folder's other entries that still match"],
    options: [
      {
        owner: 'the export command',
        options: [
          { name: 'bundle', type: 'string', value: 'DIR', help: 'the bundle (default: the latest in <build-dir>)' },
          { name: 'out', type: 'string', value: 'FILE.tar', help: 'the tar to write', required: 'export needs --out FILE.tar' },
          {
            name: 'trust',
            type: 'string',
            value: 'keys.json',
            help: 'the trusted public keys the bundle must verify with',
            required: 'export needs --trust FILE: the trusted public keys the bundle must verify with (never taken from the build)',
          },
        ],
      },
      OUTPUT_OPTIONS,
    ],
    vaultErrors: true,
    load: () => import('./commands/export.js').then((m) => m.run),
  },
];

const COL = 22;
const GLOBAL_OPTIONS: readonly (readonly [string, string])[] = [
  ['-h, --help', 'this help; after a command, that command\'s help'],
  ['--version', 'print the version'],
];

function optionLine(o: OptionSpec): string {
  const flag = `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.value ? ` ${o.value}` : ''}`;
  return flag.length < COL - 3 ? `  ${flag.padEnd(COL - 3)} ${o.help}` : `  ${flag}\n${' '.repeat(COL)}${o.help}`;
}

/** The words and own options after the command's name: `ISO DEVICE [--yes] [--sha256 HEX]`; `[options]` for the shared ones. */
export function synopsis(c: CommandSpec, withShared = false): string {
  const own = c.options.filter((g) => g.owner).flatMap((g) => g.options);
  const opts = own.map((o) => {
    const s = `--${o.name}${o.value ? ` ${o.value}` : ''}`;
    return o.required ? s : `[${s}]`;
  });
  return [c.name, ...(c.words ? [c.words] : []), ...opts, ...(withShared ? ['[options]'] : []), ...(c.passThrough ? ['-- CMD...'] : [])].join(' ');
}

/** The command's lines in the command list (short: name and words only), and after a usage error. */
export function commandBlock(c: CommandSpec, short = false): string {
  const head = `  ${short ? [c.name, ...(c.words ? [c.words] : [])].join(' ') : synopsis(c)}`;
  const lines = head.length < COL ? [`${head.padEnd(COL)}${c.summary}`] : [head, `${' '.repeat(COL)}${c.summary}`];
  for (const d of c.details ?? []) lines.push(`${' '.repeat(COL)}${d}`);
  return lines.join('\n');
}

export const exitCodesLine = (): string => `exit codes: ${EXIT_MEANINGS.map(([c, m]) => `${c} ${m}`).join(' · ')}`;

/** `clawos-build --help`. */
export function usage(table: readonly CommandSpec[] = COMMANDS): string {
  const shared = [...new Set(table.flatMap((c) => c.options.filter((g) => !g.owner).flatMap((g) => g.options)))];
  return [
    'usage: clawos-build <command> [options]',
    '       clawos-build <command> --help   (the command and all its options)',
    '',
    'commands:',
    ...table.map((c) => commandBlock(c, true)),
    '',
    'options:',
    ...shared.map(optionLine),
    ...GLOBAL_OPTIONS.map(([f, h]) => `  ${f.padEnd(COL - 3)} ${h}`),
    '',
    exitCodesLine(),
  ].join('\n');
}

/** `clawos-build COMMAND --help`. */
export function commandHelp(c: CommandSpec): string {
  return [
    `usage: clawos-build ${synopsis(c, true)}`,
    '',
    c.summary,
    ...(c.details ?? []),
    '',
    'options:',
    ...allOptions(c).map(optionLine),
    `  ${'-h, --help'.padEnd(COL - 3)} this help`,
    '',
    exitCodesLine(),
  ].join('\n');
}

function processIo(): CommandIo {
  return { repoRoot: repoRootDir(), print: (s) => process.stdout.write(s), printErr: (s) => process.stderr.write(s) };
}

async function version(repoRoot: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Parse argv without running anything: the command's options, 'help' or 'version'; throws UsageError. */
export function parseCli(argv: string[]): ParsedArgs | 'help' | 'version' {
  const { name, rest } = findCommand(argv, COMMANDS);
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    if (argv.includes('--version')) return 'version';
    if (argv.includes('--help') || argv.includes('-h')) return 'help';
    throw new UsageError(name === undefined ? 'no command given' : `unknown command "${name}"`);
  }
  return parseCommand(entry, rest, COMMANDS);
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  const entry = COMMANDS.find((c) => c.name === findCommand(argv, COMMANDS).name);
  const usageError = (e: UsageError): number => {
    io.printErr(`clawos-build: ${e.message}\n\n${entry ? `${commandBlock(entry)}\nrun \`clawos-build ${entry.name} --help\` for its options` : usage()}\n`);
    return EXIT.usage;
  };
  let a: ParsedArgs | 'help' | 'version';
  try {
    a = parseCli(argv);
  } catch (e) {
    if (e instanceof UsageError) return usageError(e);
    throw e;
  }
  if (a === 'help') {
    io.print(`${entry ? commandHelp(entry) : usage()}\n`);
    return EXIT.ok;
  }
  if (a === 'version') {
    io.print(`clawos-build ${await version(io.repoRoot)}\n`);
    return EXIT.ok;
  }
  try {
    const run = await entry!.load();
    return await run(a, io);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err);
    return reportError(err, { json: !!a.json, ...(entry!.vaultErrors ? { vaultErrors: true } : {}) }, io);
  }
}
