/**
 * `clawos-build boot`: boot a given ISO under QEMU, once or as a CI boot lab
 * (--repeat N --jobs J [--until-fail]), with every firmware variant of the arch's
 * machine definition or those --firmware selects (bios, uefi, or a variant
 * name). Every boot's record and serial log, summary.json and junit.xml land
 * under <build>/boots/<stamp>/ (host/boot-lab.ts).
 */
import { mkdir, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import type { BootRecord } from '../../qemu/boot.js';
import { chooseAccelerator, type AccelDecision } from '../../qemu/kvm-probe.js';
import { loadMachine, secureBootNotConfigured, selectVariants, type QemuMachine } from '../../qemu/machine.js';
import { findSecureBootKey, loadTestCerts } from '../../pipeline/boot/secureboot-key.js';
import { defaultKeyDir } from '../../vault/key-dir.js';
import { selectArches } from '../../pipeline/run/session.js';
import { loadExpectedChecks, lockMachineFirmware } from '../../pipeline/boot/guest-boot.js';
import { run as runProcess } from '../../lib/proc.js';
import { formatDuration } from '../../lib/format.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { buildDirArg } from '../path-args.js';
import { formatBootLine, formatLabSummary, labExitCode, runBootLab, summarizeLab, writeLabReports, type LabOptions } from '../../host/boot-lab.js';

export interface BootCommandOptions {
  repoRoot: string;
  iso?: string;
  arch: string[] | null;
  /** bios, uefi, or a variant name; absent: every variant. */
  firmware?: string;
  repeat: number;
  /** Boots at once. */
  jobs: number;
  untilFail?: boolean;
  /** Also write the JUnit XML here. */
  junit?: string;
  buildDir: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
  /** Tests: a machine definition to use instead of the arch's (e.g. with a short timeout). */
  machine?: QemuMachine;
  /** Tests: skip the KVM probe. */
  accel?: AccelDecision;
  hostCpus?: number;
  binary?: LabOptions['binary'];
  envFor?: LabOptions['envFor'];
  settleMs?: number;
  signal?: AbortSignal;
  now?: () => Date;
  /** The key dir whose Secure Boot certificate the UKIs are signed with (default $CLAWOS_KEY_DIR, as the build's). */
  keyDir?: string;
}

export function describeBoot(r: BootRecord): string {
  const stages = Object.entries(r.stage_ms)
    .filter(([, ms]) => ms !== null)
    .map(([s, ms]) => `${s} ${formatDuration(ms!)}`)
    .join(', ');
  return `${r.arch} ${r.variant}: ${r.verdict}${r.reason ? ` [${r.reason}]` : ''} at stage ${r.stage} in ${formatDuration(r.duration_ms)} (${r.accel}${stages ? `; ${stages}` : ''})${
    r.verdict === 'PASS' ? '' : `: ${r.message}`
  }`;
}

/** ISO 9660's first volume descriptor: its standard identifier "CD001" at byte 0x8001. */
const ISO9660_MAGIC_AT = 0x8001;
const ISO9660_MAGIC = Buffer.from('CD001', 'latin1');

/**
 * Refuse what is not an ISO 9660 image before anything starts QEMU with it
 * (UserError naming `shown` and what was found there).
 */
export async function checkIso9660(iso: string, shown = iso): Promise<void> {
  let fh;
  try {
    fh = await open(iso, 'r');
  } catch (e) {
    throw new UserError(`--iso ${shown}: ISO not found or not readable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) throw new UserError(`--iso ${shown} is not a file`);
    const got = Buffer.alloc(ISO9660_MAGIC.length);
    const { bytesRead } = await fh.read(got, 0, got.length, ISO9660_MAGIC_AT);
    if (bytesRead < got.length) {
      throw new UserError(`--iso ${shown} is not an ISO 9660 image: it is ${st.size} bytes, too short to hold "CD001" at byte 0x8001`);
    }
    if (!got.equals(ISO9660_MAGIC)) {
      const hex = [...got].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      throw new UserError(`--iso ${shown} is not an ISO 9660 image: byte 0x8001 holds ${hex}, not "CD001" (43 44 30 30 31)`);
    }
  } finally {
    await fh.close();
  }
}

/** A fresh <build>/boots/<stamp> (suffixed if two labs start in the same millisecond). */
async function claimLabDir(buildDir: string, now: Date): Promise<string> {
  const base = join(buildDir, 'boots', now.toISOString().replace(/[:.]/g, '-'));
  await mkdir(join(buildDir, 'boots'), { recursive: true });
  for (let i = 1; ; i++) {
    const d = i === 1 ? base : `${base}-${i}`;
    try {
      await mkdir(d);
      return d;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

export async function bootCommand(o: BootCommandOptions): Promise<number> {
  if (!o.iso) throw new UserError('boot needs --iso FILE');
  if (!o.arch || o.arch.length !== 1) throw new UserError('boot needs exactly one --arch (x86_64 or aarch64)', 'e.g. clawos-build boot --iso build/build-engineer/x86_64/clawos-x86_64.iso --arch x86_64');
  if (o.untilFail && o.repeat < 2) throw new UserError('--until-fail needs --repeat N (N > 1): the most rounds to run while no boot fails');
  const iso = resolve(o.iso);
  await checkIso9660(iso, o.iso);
  const arch = [...(await selectArches(o.repoRoot, o.arch)).values()][0]!;
  const buildDir = await buildDirArg(o.buildDir);
  // The firmware the lock pins (the host's copy when it is the locked one), as the build's boots use.
  const machine =
    o.machine ??
    (await lockMachineFirmware({ run: (a, opts) => runProcess(a, opts), cacheDir: join(buildDir, 'cache'), log: () => {}, repoRoot: o.repoRoot }, arch, await loadMachine(o.repoRoot, arch.qemu)));
  // G-06's rule: a Secure Boot variant whose VARS do not enrol the key dir's certificate would refuse the UKI: never booted.
  const sbCert = (await findSecureBootKey(o.keyDir ?? defaultKeyDir(), await loadTestCerts(o.repoRoot)))?.certSha256;
  const notConfigured: string[] = [];
  const variants = selectVariants(machine, o.firmware).filter((v) => {
    const why = secureBootNotConfigured(v, sbCert);
    if (why) notConfigured.push(why);
    return !why;
  });
  if (!variants.length) throw new UserError(`nothing to boot: ${notConfigured.join('; ')}`, 'select another --firmware, or see docs/boot-lab.md (Secure Boot keys)');
  if (!o.json) for (const why of notConfigured) o.printErr(`${why}\n`);
  const expected = await loadExpectedChecks(join(o.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch.name, arch.guest as unknown as Record<string, unknown>);
  const decision =
    o.accel ??
    (await chooseAccelerator({ machine, probe: { variant: variants[0]!.name, media: { iso } }, cacheFile: join(buildDir, 'cache', 'qemu-accel.json'), binary: o.binary }));
  if (!o.json) o.printErr(`accelerator: ${decision.accel} (${decision.note})\n`);
  const isoSha256 = await sha256File(iso);
  const labDir = await claimLabDir(buildDir, (o.now ?? (() => new Date()))());

  // Boots run in their own process groups: a Ctrl-C must reach them through us.
  const ac = new AbortController();
  const onSig = () => ac.abort();
  const onOuter = () => ac.abort();
  if (o.signal) o.signal.addEventListener('abort', onOuter, { once: true });
  else {
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
  }
  const planned = o.repeat * variants.length;
  if (!o.json) {
    o.printErr(
      `boot lab: ${planned} boot(s) of ${variants.map((v) => v.name).join(', ')}${o.repeat > 1 ? ` (${o.repeat} rounds)` : ''}, ${Math.min(o.jobs, planned)} at a time${
        o.untilFail ? ', until the first failing boot' : ''
      }; records in ${labDir}\n`,
    );
  }
  let run;
  try {
    run = await runBootLab({
      machine,
      variants,
      iso,
      isoSha256,
      repeat: o.repeat,
      jobs: o.jobs,
      untilFail: !!o.untilFail,
      labDir,
      expectedChecks: expected,
      accel: decision,
      hostCpus: o.hostCpus ?? availableParallelism(),
      signal: ac.signal,
      binary: o.binary,
      envFor: o.envFor,
      settleMs: o.settleMs,
      onEvent: (e) => {
        if (o.json || e.type !== 'finish') return;
        o.print(`${formatBootLine(e, describeBoot)}\n`);
      },
    });
  } finally {
    o.signal?.removeEventListener('abort', onOuter);
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
  const summary = summarizeLab(run);
  const files = await writeLabReports(run, summary, o.junit ? resolve(o.junit) : undefined);
  const code = labExitCode(summary);
  if (o.json) {
    printJson(o, { ...summary, not_configured: notConfigured, exit_code: code, lab_dir: labDir, summary_file: files.summary, junit_file: files.junit, junit_copy: o.junit ? resolve(o.junit) : null });
  } else {
    o.print(formatLabSummary(summary));
    o.print(`timeout: ${summary.timeout_note}\nrecords: ${labDir}\nsummary: ${files.summary}\njunit: ${files.junit}${o.junit ? ` (copy: ${resolve(o.junit)})` : ''}\n`);
  }
  return code;
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return bootCommand({
    repoRoot: io.repoRoot,
    iso: a.iso as string | undefined,
    arch: a.arch as string[],
    firmware: a.firmware as string | undefined,
    repeat: a.repeat as number,
    jobs: a.jobs as number,
    untilFail: !!a.untilFail,
    junit: a.junit as string | undefined,
    buildDir: a.buildDir as string,
    json: !!a.json,
    print: io.print,
    printErr: io.printErr,
    keyDir: defaultKeyDir(io.env),
  });
}
