/**
 * `clawos-build bench`: G-08's comparison run by hand, outside the phases.
 * ClawOS's kernel and Debian's stock kernel boot with the same initramfs on
 * the same QEMU machine; prints the ratio table per arch (pipeline/bench/stock-bench.ts).
 * By default it uses the kernel and initramfs of the build dir.
 *
 * `clawos-build bench boot`: the ISO of the build dir against its floor, the
 * same kernel and initramfs booted with -kernel by the same firmware, per boot
 * variant (pipeline/bench/boot-floor-bench.ts).
 */
import { access, constants, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InfraError, UserError } from '../../lib/errors.js';
import { run as procRun, type Runner } from '../../lib/proc.js';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import { selectArches } from '../../pipeline/run/session.js';
import { loadExpectedChecks, lockMachineFirmware } from '../../pipeline/boot/guest-boot.js';
import { chooseAccelerator, type AccelDecision } from '../../qemu/kvm-probe.js';
import { loadMachine, secureBootNotConfigured, selectVariants, type BootVariant, type QemuMachine } from '../../qemu/machine.js';
import { findSecureBootKey, loadTestCerts } from '../../pipeline/boot/secureboot-key.js';
import { defaultKeyDir } from '../../vault/key-dir.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { benchAgainstStock, formatBenchTable, type BenchResult } from '../../pipeline/bench/stock-bench.js';
import { formatFloorMarkdown, formatFloorTable, runBootFloorBench, type BootFloorOptions, type BootFloorResult } from '../../pipeline/bench/boot-floor-bench.js';

export interface BenchCommandOptions {
  repoRoot: string;
  buildDir: string;
  arch: string[];
  runs: number;
  bar?: number;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
}

export async function benchCommand(o: BenchCommandOptions): Promise<number> {
  const arches = await selectArches(o.repoRoot, o.arch);
  const buildDir = resolve(o.buildDir);
  const bar = o.bar ?? 0.8;
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  const results: BenchResult[] = [];
  try {
    for (const arch of arches.values()) {
      if (!arch.baseline) throw new UserError(`specs/arch/${arch.name}.yaml has no baseline: section: nothing to compare ${arch.name} with`);
      const kernel = join(buildDir, 'kernel-engineer', arch.name, 'vmlinuz');
      const initramfs = join(buildDir, 'build-engineer', arch.name, 'initramfs.cpio.gz');
      for (const f of [kernel, initramfs]) {
        try {
          await access(f, constants.R_OK);
        } catch {
          throw new UserError(`${f} not found: build ClawOS first`, `run \`clawos-build all --arch ${arch.name}\` (or p3 for the kernel and initramfs)`);
        }
      }
      const outDir = join(buildDir, 'bench', `${arch.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      await mkdir(outDir, { recursive: true });
      const ctx = {
        run: procRun,
        cacheDir: join(buildDir, 'cache'),
        log: () => {},
        progress: (m: string) => {
          if (!o.json) o.printErr(`${m}\n`);
        },
        signal: ac.signal,
      };
      const { result: r } = await benchAgainstStock({
        ctx,
        repoRoot: o.repoRoot,
        arch,
        kernel,
        initramfs,
        runs: o.runs,
        bar,
        outDir,
        onAccel: (d) => {
          if (!o.json) o.printErr(`accelerator: ${d.accel} (${d.note})\n`);
        },
      });
      results.push(r);
      if (!o.json) o.print(`${formatBenchTable(r)}\nserial logs: ${outDir}\n\n`);
    }
  } finally {
    process.off('SIGINT', onSig);
  }
  const ok = results.every((r) => r.ok);
  if (o.json) printJson(o, { ok, bar, results });
  return ac.signal.aborted ? EXIT.interrupted : ok ? EXIT.ok : EXIT.failed;
}

export interface BootBenchCommandOptions {
  repoRoot: string;
  buildDir: string;
  arch: string[];
  runs: number;
  /** bios, uefi or a variant name; absent: every variant. */
  firmware?: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
  /** Tests: a machine definition per arch instead of qemu/<arch>.yaml with the locked firmware. */
  machine?: (arch: string) => QemuMachine;
  /** Tests: skip the KVM probe. */
  accel?: AccelDecision;
  /** Where the key dir is (CLAWOS_KEY_DIR); default the process's. */
  env?: NodeJS.ProcessEnv;
  binary?: string;
  envFor?: BootFloorOptions['envFor'];
  runner?: Runner;
  settleMs?: number;
  now?: () => Date;
}

/** The build dir's ISO, kernel and initramfs of one arch, as G-05 and A-01 leave them. */
export function bootBenchInputs(buildDir: string, arch: string): { iso: string; kernel: string; initramfs: string } {
  return {
    iso: join(buildDir, 'build-engineer', arch, `clawos-${arch}.iso`),
    kernel: join(buildDir, 'kernel-engineer', arch, 'vmlinuz'),
    initramfs: join(buildDir, 'build-engineer', arch, 'initramfs.cpio.gz'),
  };
}

/**
 * The floor kernel of each Secure Boot variant: the firmware verifies what
 * -kernel hands it, so the floor boots the kernel signed with the key the UKI is
 * signed with (the key dir's), when the variant's firmware enrols that key.
 * Otherwise the unsigned kernel, which such firmware refuses: the floor then
 * says so instead of having a figure.
 */
async function signedFloorKernels(o: { repoRoot: string; env?: NodeJS.ProcessEnv; variants: readonly BootVariant[]; kernel: string; outDir: string; runner?: Runner }): Promise<Record<string, { path: string; sha256: string }>> {
  if (!o.variants.some((v) => v.secure_boot)) return {};
  const key = await findSecureBootKey(defaultKeyDir(o.env ?? process.env), await loadTestCerts(o.repoRoot));
  const enrolled = o.variants.filter((v) => v.secure_boot && key && !secureBootNotConfigured(v, key.certSha256));
  if (!key || !enrolled.length) return {};
  // One signature serves every variant that enrols the key.
  const path = join(o.outDir, 'floor-kernel.signed.efi');
  await mkdir(o.outDir, { recursive: true });
  const r = await (o.runner ?? procRun)(['sbsign', '--key', key.keyPath, '--cert', key.certPath, '--output', path, o.kernel], {});
  if (!r.ok) throw new InfraError(`sbsign could not sign the floor kernel ${o.kernel}: ${r.spawnError ?? r.tail.slice(-2).join(' / ')}`, 'apt-get install sbsigntool');
  const signed = { path, sha256: await sha256File(path) };
  return Object.fromEntries(enrolled.map((v) => [v.name, signed]));
}

export async function bootBenchCommand(o: BootBenchCommandOptions): Promise<number> {
  const arches = await selectArches(o.repoRoot, o.arch);
  const buildDir = resolve(o.buildDir);
  // Check every arch's inputs before the first boot: a missing ISO for the second arch must not cost the first arch's boots.
  for (const arch of arches.values()) {
    for (const f of Object.values(bootBenchInputs(buildDir, arch.name))) {
      try {
        await access(f, constants.R_OK);
      } catch {
        throw new InfraError(`${f} not found: bench boot needs the ISO, kernel and initramfs of a build`, `run \`clawos-build all --arch ${arch.name}\` (or p4) first, or give --build-dir of a build that has them`);
      }
    }
  }
  const stamp = (o.now ?? (() => new Date()))().toISOString().replace(/[:.]/g, '-');
  const benchDir = join(buildDir, 'bench', `boot-floor-${stamp}`);
  await mkdir(benchDir, { recursive: true });
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  const results: BootFloorResult[] = [];
  try {
    for (const arch of arches.values()) {
      const inputs = bootBenchInputs(buildDir, arch.name);
      const machine =
        o.machine?.(arch.name) ??
        (await lockMachineFirmware({ run: (a, opts) => procRun(a, opts), cacheDir: join(buildDir, 'cache'), log: () => {}, repoRoot: o.repoRoot }, arch, await loadMachine(o.repoRoot, arch.qemu)));
      const variants = selectVariants(machine, o.firmware);
      const expected = await loadExpectedChecks(join(o.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch.name, arch.guest as unknown as Record<string, unknown>);
      const decision =
        o.accel ??
        (await chooseAccelerator({
          machine,
          probe: { variant: variants[0]!.name, media: { kernel: inputs.kernel, initrd: inputs.initramfs } },
          cacheFile: join(buildDir, 'cache', 'qemu-accel.json'),
          signal: ac.signal,
        }));
      if (!o.json) o.printErr(`accelerator: ${decision.accel} (${decision.note})\n`);
      const signed = await signedFloorKernels({ ...o, variants, kernel: inputs.kernel, outDir: join(benchDir, arch.name) });
      const r = await runBootFloorBench({
        machine,
        variants,
        ...inputs,
        // The ISO's command line words beyond console= and panic=-1, which direct_kernel already gives.
        append: (arch.iso.cmdline ?? []).join(' '),
        floorKernel: Object.fromEntries(Object.entries(signed).map(([v, k]) => [v, k.path])),
        accel: decision.accel,
        accelNote: decision.note,
        runs: o.runs,
        expectedChecks: expected,
        outDir: join(benchDir, arch.name),
        media: {
          iso: inputs.iso,
          iso_sha256: await sha256File(inputs.iso),
          kernel: inputs.kernel,
          kernel_sha256: await sha256File(inputs.kernel),
          initramfs: inputs.initramfs,
          initramfs_sha256: await sha256File(inputs.initramfs),
          ...(Object.keys(signed).length ? { signed_kernels: signed } : {}),
        },
        signal: ac.signal,
        progress: (m) => {
          if (!o.json) o.printErr(`${m}\n`);
        },
        runner: o.runner,
        binary: o.binary,
        envFor: o.envFor,
        settleMs: o.settleMs,
      });
      results.push(r);
      if (!o.json) o.print(`${formatFloorTable(r)}\n\n`);
      if (r.interrupted) break;
    }
  } finally {
    process.off('SIGINT', onSig);
  }
  const ok = results.length === arches.size && results.every((r) => r.ok);
  const markdown = formatFloorMarkdown(results);
  await writeJsonAtomic(join(benchDir, 'boot-floor.json'), { ok, results });
  await writeFileAtomic(join(benchDir, 'boot-floor.md'), markdown);
  if (o.json) printJson(o, { ok, bench_dir: benchDir, results });
  else o.print(`${markdown}\nrecords: ${benchDir} (boot-floor.json, boot-floor.md, serial logs)\n`);
  return ac.signal.aborted ? EXIT.interrupted : ok ? EXIT.ok : EXIT.failed;
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  if (a.positionals[0] === 'boot') {
    return bootBenchCommand({
      repoRoot: io.repoRoot,
      buildDir: a.buildDir as string,
      arch: a.arch as string[],
      runs: a.runs as number,
      firmware: a.firmware as string | undefined,
      json: !!a.json,
      env: io.env,
      print: io.print,
      printErr: io.printErr,
    });
  }
  return benchCommand({ repoRoot: io.repoRoot, buildDir: a.buildDir as string, arch: a.arch as string[], runs: a.runs as number, json: !!a.json, print: io.print, printErr: io.printErr });
}
