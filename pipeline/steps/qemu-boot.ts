/**
 * `uses: qemu-boot`: boot the arch's ISO under QEMU in every boot variant of its
 * machine definition (qemu/<arch>.yaml) and judge each serial console.
 * params:
 *   iso                    ISO path, relative to the build dir
 *   variants               optional subset of the machine's variant names
 *   expected_checks_file   repo-relative YAML: `checks: [{name, arches?}, …]`
 */
import { access, constants, readFile, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import { UserError } from '../../lib/errors.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import type { ArchSpec } from '../catalog/arch.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import { bootIso, type BootRecord } from '../../qemu/boot.js';
import { chooseAccelerator } from '../../qemu/kvm-probe.js';
import { loadMachine, secureBootNotConfigured, type QemuMachine } from '../../qemu/machine.js';
import { loadExpectedChecks, lockMachineFirmware, machinePackages } from '../boot/guest-boot.js';
import { bootReportsOf } from '../boot/boot-reports.js';

const SCHEMA = 'specs/schemas/qemu-machine.schema.json';

function stringList(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw new UserError(`qemu-boot: ${what} must be a list of strings`);
}

export const qemuBootStep: Step = {
  name: 'qemu-boot',
  lockedInputs: true,
  version: 2,
  // Secure Boot variants boot only a UKI signed with the certificate their VARS enrol: the key's certificate is an input.
  secureBootKey: true,
  // No expected checks file would let a boot PASS with nothing checked in the guest (issue 11): required.
  params: paramsSchema({ iso: P.path, variants: { type: 'array', items: { type: 'string' } }, expected_checks_file: P.path, out: P.path }, ['iso', 'expected_checks_file']),
  // The accelerator probe's scratch sits beside its cache file; KVM when the host has it.
  sandbox: { cache: true, devices: ['/dev/kvm'] },
  // Its data is the list of boot records; each becomes a boot-verdict event.
  bootReports: bootReportsOf,

  toolPackages(arch) {
    return machinePackages(arch);
  },

  implicitInputs(arch, params) {
    const out = [SCHEMA];
    if (arch) out.push(arch.qemu);
    if (typeof params.expected_checks_file === 'string') out.push(params.expected_checks_file);
    return out;
  },

  async run(ctx: StepContext): Promise<Outcome> {
    if (!ctx.arch) return fail('spec-invalid', 'qemu-boot needs an architecture (task must run per arch)');
    const arch = ctx.arch;
    let machine: QemuMachine;
    let variants: string[];
    let expected: string[] = [];
    const isoParam = ctx.params.iso;
    try {
      if (typeof isoParam !== 'string' || !isoParam) throw new UserError('qemu-boot: param "iso" (path relative to the build dir) is required');
      machine = await lockMachineFirmware(ctx, arch, await loadMachine(ctx.repoRoot, arch.qemu));
      if (machine.arch !== arch.name) throw new UserError(`${arch.qemu}: arch is ${machine.arch}, expected ${arch.name}`);
      const all = machine.variants.map((v) => v.name);
      variants = stringList(ctx.params.variants, 'param "variants"') ?? all;
      const unknown = variants.filter((v) => !all.includes(v));
      if (unknown.length) throw new UserError(`qemu-boot: unknown variant(s) ${unknown.join(', ')} for ${arch.name} (have: ${all.join(', ')})`);
      if (!variants.length) throw new UserError('qemu-boot: param "variants" is empty');
      const checksFile = ctx.params.expected_checks_file;
      if (checksFile !== undefined) {
        if (typeof checksFile !== 'string') throw new UserError('qemu-boot: param "expected_checks_file" must be a path');
        expected = await loadExpectedChecks(resolve(ctx.repoRoot, checksFile), arch.name, arch.guest as unknown as Record<string, unknown>);
      }
    } catch (err) {
      if (err instanceof UserError) return fail('spec-invalid', err.message);
      throw err;
    }
    // Records go to `out` (build-relative, inside the task's own directory) or the task dir itself.
    const outDir = typeof ctx.params.out === 'string' ? ctx.buildPath(ctx.params.out) : ctx.outDir;
    if (outDir !== ctx.outDir && !outDir.startsWith(ctx.outDir + '/')) {
      return fail('spec-invalid', `qemu-boot: param "out" (${String(ctx.params.out)}) must lie inside the task's directory ${relative(ctx.buildDir, ctx.outDir)}`);
    }
    // Stale records of an earlier run (a variant since removed) must not count as evidence.
    if (outDir !== ctx.outDir) await rm(outDir, { recursive: true, force: true });
    const iso = ctx.buildPath(isoParam);
    try {
      await access(iso, constants.R_OK);
    } catch {
      return fail('output-missing', `ISO not found: ${relative(ctx.buildDir, iso) || iso}`);
    }
    ctx.log(`qemu-boot: ${arch.name} ${variants.join(', ')}; expected checks: ${expected.join(', ') || '(none)'}`);

    ctx.progress(`${arch.name}: choosing accelerator`);
    const decision = await chooseAccelerator({
      machine,
      probe: { variant: variants[0], media: { iso } },
      // ctx.run logs every line itself; bootIso/the probe only add a sink to watch.
      runner: ctx.run,
      signal: ctx.signal,
      cacheFile: join(ctx.cacheDir, 'qemu-accel.json'),
    });
    ctx.log(`qemu-boot: accelerator ${decision.accel}: ${decision.note}`);

    // A Secure Boot variant whose firmware does not enrol the certificate the UKI is signed with
    // would refuse it: never booted, never PASS (docs/boot-lab.md: how to make VARS that enrol it).
    const notConfigured = new Map<string, string>();
    for (const name of variants) {
      const why = secureBootNotConfigured(machine.variants.find((v) => v.name === name)!, ctx.secureBootKey?.certSha256);
      if (why) notConfigured.set(name, why);
    }
    const records: BootRecord[] = [];
    for (const variant of variants) {
      if (ctx.signal.aborted) break;
      if (notConfigured.has(variant)) {
        ctx.log(`qemu-boot: ${notConfigured.get(variant)!}`);
        continue;
      }
      ctx.progress(`${arch.name}: booting ${variant} (${decision.accel})`);
      const rec = await bootIso({
        machine,
        variant,
        iso,
        accel: decision.accel,
        accelNote: decision.note,
        outDir,
        expectedChecks: expected,
        signal: ctx.signal,
        runner: ctx.run,
      });
      ctx.log(`qemu-boot: ${variant}: ${rec.verdict} at stage ${rec.stage}: ${rec.message}`);
      records.push(rec);
    }

    const evidence: Evidence[] = [];
    for (const rec of records) {
      for (const [label, file] of [
        [`${rec.variant} boot record`, `${rec.variant}.json`],
        [`${rec.variant} serial log`, rec.serial_log],
      ] as const) {
        const abs = join(outDir, file);
        try {
          evidence.push({ label, path: relative(ctx.buildDir, abs), sha256: await sha256File(abs) });
        } catch {
          /* not written: the record says why */
        }
      }
    }
    const extra = { evidence, data: records };
    const bad = records.find((r) => r.verdict !== 'PASS');
    if (bad) {
      const message = `${bad.variant}: ${bad.verdict} at stage ${bad.stage}: ${bad.message}`;
      if (bad.verdict === 'INFRA_ERROR') return infra(message, extra);
      if (bad.verdict === 'TIMEOUT') return { status: 'TIMEOUT', reason: 'boot-timeout', message, ...extra };
      return fail(bad.reason ?? 'boot-marker-missing', message, extra);
    }
    if (notConfigured.size) {
      return { status: 'NOT_CONFIGURED', reason: 'not-configured', message: [...notConfigured.values()].join('; '), ...extra };
    }
    if (records.length < variants.length) {
      return { status: 'TIMEOUT', reason: 'timeout', message: `aborted after ${records.length} of ${variants.length} boots`, ...extra };
    }
    const summary = records.map((r) => `${r.variant} ${(r.duration_ms / 1000).toFixed(0)} s`).join(', ');
    return pass(`${arch.name}: all ${records.length} boots passed under ${decision.accel.toUpperCase()} (${summary})`, extra);
  },
};
