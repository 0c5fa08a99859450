/**
 * `uses: apparmor-flow` (task F-02, aa-complain -> aa-enforce): two boots of the
 * same kernel and initramfs, with clawos.apparmor=complain and then
 * clawos.apparmor=enforce on the kernel command line. GRUB's menu on the ISO
 * cannot take a command line, so the kernel is booted directly (-kernel/-initrd/
 * -append, the machine's direct_kernel args) with the machine's first variant
 * unless `variant` says otherwise.
 *
 * Each boot must PASS with every expected check, and the `apparmor` check must show:
 *   complain: every F-06 profile listed (complain); the selftest read ALLOWED and
 *             logged (apparmor="ALLOWED");
 *   enforce:  every F-06 profile listed (enforce); the selftest read DENIED with
 *             EACCES and logged (apparmor="DENIED").
 *
 * params (build-relative unless marked repo): kernel, initrd, policy_manifest (F-06's
 * apparmor-policy.json), expected_checks_file (repo), out (inside the task's dir),
 * check (default apparmor), variant (optional).
 * Outputs in `out`: <mode>/<variant>.json + .serial.log per boot, F-02-apparmor-flow.json.
 */
import { access, constants, readFile, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import { bootIso, type BootRecord } from '../../qemu/boot.js';
import { chooseAccelerator } from '../../qemu/kvm-probe.js';
import { findVariant, loadMachine, type QemuMachine } from '../../qemu/machine.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError, stringParam } from '../catalog/step-params.js';
import { APPARMOR_MODES, type ApparmorMode } from '../security/apparmor-profile-text.js';
import { parseApparmorCheckValue } from '../security/apparmor-check-value.js';
import { loadExpectedChecks, lockMachineFirmware, machinePackages } from '../boot/guest-boot.js';

const DEFAULT_CHECKS_FILE = 'buildroot-external/board/clawos/checks.yaml';

/** What one mode's boot must show: the probe's verdict and the audit record's kind. */
const EXPECT: Record<ApparmorMode, { probe: 'ALLOWED' | 'DENIED'; said: string }> = {
  complain: { probe: 'ALLOWED', said: 'read ALLOWED and logged' },
  enforce: { probe: 'DENIED', said: 'read DENIED (EACCES) and logged' },
};

export interface FlowBoot {
  mode: ApparmorMode;
  verdict: string;
  record: string;
  serial_log: string;
  profiles: { name: string; mode: string }[];
  probe: string | null;
  audit: string | null;
  problems: string[];
}

/** Problems with one boot's record, judged against the mode it was booted in and F-06's profile names. */
export function judgeFlowBoot(rec: BootRecord, mode: ApparmorMode, check: string, wantProfiles: string[]): { problems: string[]; value: ReturnType<typeof parseApparmorCheckValue> | null } {
  const problems: string[] = [];
  if (rec.verdict !== 'PASS') problems.push(`${rec.verdict} at stage ${rec.stage}: ${rec.message}`);
  const c = rec.checks.find((x) => x.name === check);
  if (!c) {
    if (rec.verdict === 'PASS') problems.push(`no ${check} check reported`);
    return { problems, value: null };
  }
  const v = parseApparmorCheckValue(c.value);
  if (v.mode !== mode) problems.push(`the guest ran in mode ${v.mode || '(none)'}, not ${mode}: clawos.apparmor=${mode} was not honoured`);
  const listed = new Map(v.profiles.map((p) => [p.name, p.mode]));
  const missing = wantProfiles.filter((n) => !listed.has(n));
  if (missing.length) problems.push(`profiles not listed: ${missing.join(', ')}`);
  const wrong = v.profiles.filter((p) => p.mode !== mode).map((p) => `${p.name} (${p.mode})`);
  if (wrong.length) problems.push(`profiles not in ${mode} mode: ${wrong.join(', ')}`);
  const e = EXPECT[mode];
  if (v.probe !== e.probe) problems.push(`selftest read ${v.probe ?? 'not probed'}, expected ${e.probe}`);
  if (v.auditKind !== e.probe) problems.push(`no apparmor="${e.probe}" audit record for the selftest read (got ${v.audit ?? 'none'})`);
  return { problems, value: v };
}

const str = (params: Record<string, unknown>, key: string, dflt?: string): string => stringParam(params, key, 'apparmor-flow', dflt);

async function runFlow(ctx: StepContext): Promise<Outcome> {
  if (!ctx.arch) return fail('spec-invalid', 'apparmor-flow boots one arch; the task must be per_arch');
  const arch = ctx.arch;
  const kernel = ctx.buildPath(str(ctx.params, 'kernel'));
  const initrd = ctx.buildPath(str(ctx.params, 'initrd'));
  const manifestPath = ctx.buildPath(str(ctx.params, 'policy_manifest'));
  const check = str(ctx.params, 'check', 'apparmor');
  const out = ctx.buildPath(str(ctx.params, 'out'));
  if (!out.startsWith(ctx.outDir + '/')) {
    return fail('spec-invalid', `apparmor-flow: parameter 'out' (${String(ctx.params.out)}) must lie inside the task's directory ${relative(ctx.buildDir, ctx.outDir)}`);
  }
  const machine: QemuMachine = await lockMachineFirmware(ctx, arch, await loadMachine(ctx.repoRoot, arch.qemu));
  const variant = typeof ctx.params.variant === 'string' ? findVariant(machine, ctx.params.variant).name : machine.variants[0]!.name;
  const expected = await loadExpectedChecks(resolve(ctx.repoRoot, str(ctx.params, 'expected_checks_file', DEFAULT_CHECKS_FILE)), arch.name, arch.guest as unknown as Record<string, unknown>);
  if (!expected.includes(check)) return fail('spec-invalid', `apparmor-flow: the expected checks file does not list the ${check} check for ${arch.name}`);

  for (const [what, p] of [
    ['kernel', kernel],
    ['initrd', initrd],
    ['policy manifest', manifestPath],
  ] as const) {
    try {
      await access(p, constants.R_OK);
    } catch {
      return fail('output-missing', `apparmor-flow: ${what} ${relative(ctx.buildDir, p)} not found (the task that makes it has not run?)`);
    }
  }
  let wantProfiles: string[];
  try {
    const m = JSON.parse(await readFile(manifestPath, 'utf8')) as { profiles?: { name?: unknown }[] };
    wantProfiles = (m.profiles ?? []).map((p) => String(p.name));
  } catch (err) {
    return fail('output-missing', `apparmor-flow: ${relative(ctx.buildDir, manifestPath)}: not JSON: ${(err as Error).message}`);
  }
  if (!wantProfiles.length) return fail('output-missing', `apparmor-flow: ${relative(ctx.buildDir, manifestPath)} lists no profiles`);

  // Records of an earlier run must not count as evidence.
  await rm(out, { recursive: true, force: true });
  const media = (mode: ApparmorMode) => ({ kernel, initrd, append: `clawos.apparmor=${mode}` });
  ctx.progress(`${arch.name}: choosing accelerator`);
  const decision = await chooseAccelerator({
    machine,
    probe: { variant, media: media('complain') },
    runner: ctx.run,
    signal: ctx.signal,
    cacheFile: join(ctx.cacheDir, 'qemu-accel.json'),
  });
  ctx.log(`apparmor-flow: ${arch.name} ${variant}, accelerator ${decision.accel}: ${decision.note}; expected checks: ${expected.join(', ')}`);

  const boots: FlowBoot[] = [];
  const evidence: Evidence[] = [];
  for (const mode of APPARMOR_MODES) {
    if (ctx.signal.aborted) break;
    ctx.progress(`${arch.name}: booting with clawos.apparmor=${mode} (${decision.accel})`);
    const dir = join(out, mode);
    const rec = await bootIso({
      machine,
      variant,
      kernel: { path: kernel, initrd, append: media(mode).append },
      accel: decision.accel,
      accelNote: decision.note,
      outDir: dir,
      expectedChecks: expected,
      signal: ctx.signal,
      runner: ctx.run,
    });
    const j = judgeFlowBoot(rec, mode, check, wantProfiles);
    ctx.log(`apparmor-flow: ${mode}: ${rec.verdict}${j.problems.length ? `: ${j.problems.join('; ')}` : ''}`);
    const recordAbs = join(dir, `${rec.variant}.json`);
    const serialAbs = join(dir, rec.serial_log);
    for (const [label, abs] of [
      [`${mode} boot record`, recordAbs],
      [`${mode} serial log`, serialAbs],
    ] as const) {
      try {
        evidence.push({ label, path: relative(ctx.buildDir, abs), sha256: await sha256File(abs) });
      } catch {
        /* not written: the record says why */
      }
    }
    boots.push({
      mode,
      verdict: rec.verdict,
      record: relative(ctx.buildDir, recordAbs),
      serial_log: relative(ctx.buildDir, serialAbs),
      profiles: j.value?.profiles ?? [],
      probe: j.value?.probe ?? null,
      audit: j.value?.audit ?? null,
      problems: j.problems,
    });
    if (rec.verdict === 'INFRA_ERROR') return infra(`${mode} boot: ${rec.message}`, { evidence, data: boots });
    if (rec.verdict === 'TIMEOUT') return { status: 'TIMEOUT', reason: 'boot-timeout', message: `${mode} boot: ${rec.message}`, evidence, data: boots };
  }
  if (boots.length < APPARMOR_MODES.length) return { status: 'TIMEOUT', reason: 'timeout', message: `aborted after ${boots.length} of ${APPARMOR_MODES.length} boots`, evidence, data: boots };

  const summary = join(out, 'F-02-apparmor-flow.json');
  await writeJsonAtomic(summary, { task: ctx.instanceId, arch: arch.name, variant, accel: decision.accel, check, profiles: wantProfiles, boots });
  evidence.push({ label: 'flow summary', path: relative(ctx.buildDir, summary), sha256: await sha256File(summary) });

  const bad = boots.filter((b) => b.problems.length);
  if (bad.length) {
    return fail('boot-check-failed', bad.map((b) => `${b.mode} boot: ${b.problems.join('; ')}`).join('; '), { evidence, data: boots });
  }
  const said = boots.map((b) => `${b.mode} boot: ${b.profiles.length} profiles (${b.mode}), selftest ${EXPECT[b.mode].said}`).join('; ');
  return pass(`${arch.name}: ${said}`, { evidence, data: boots });
}

export const apparmorFlowStep: Step = {
  name: 'apparmor-flow',
  lockedInputs: true,
  version: 1,
  params: paramsSchema({ kernel: P.path, initrd: P.path, policy_manifest: P.path, check: P.path, out: P.path, variant: P.path, expected_checks_file: P.path }, ['kernel', 'initrd', 'policy_manifest', 'out']),
  // The accelerator probe's scratch sits beside its cache file; KVM when the host has it.
  sandbox: { cache: true, devices: ['/dev/kvm'] },
  // The emulator and firmware versions of the arch's machine, as for qemu-boot.
  toolPackages: (arch) => machinePackages(arch),
  implicitInputs(arch, params) {
    const out = ['specs/schemas/qemu-machine.schema.json', typeof params.expected_checks_file === 'string' ? params.expected_checks_file : DEFAULT_CHECKS_FILE];
    if (arch) out.push(arch.qemu);
    return out;
  },
  async run(ctx) {
    try {
      return await runFlow(ctx);
    } catch (err) {
      if (err instanceof UserError || err instanceof StepParamError) return fail('spec-invalid', err.message);
      throw err;
    }
  },
};
