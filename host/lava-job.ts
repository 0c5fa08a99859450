/**
 * LAVA job definitions for ClawOS's boots, one per boot variant (arch x
 * firmware), rendered from the QEMU machine data (qemu/<arch>.yaml) so a new
 * variant there is a new job here with no code change. What a job does:
 *  - deploy `to: tmpfs`: the ISO, by URL, with its sha256 (LAVA refuses other
 *    bytes), and each firmware file of the variant as one more image (LAVA copies
 *    it into the job's own directory: a UEFI variable store is never shared);
 *  - boot `method: qemu`: the machine's options go in the job context (what a
 *    lab's standard `qemu` device type reads) and in the device description
 *    lava-run is given here (renderLavaDevice);
 *  - test `monitors`: the guest's console protocol (qemu/classify-boot.ts) as
 *    LAVA test cases: each `CLAWOS-CHECK name=… result=…` line is one case of
 *    the `clawos-checks` suite, the final marker the one case of `clawos-boot`.
 * Every pattern ends in `\s`: a half-arrived line (`result=pas`) must not match.
 * Pure: no I/O, so the rendering is tested on fixed input.
 */
import { stringify } from 'yaml';
import { UserError } from '../lib/errors.js';
import { machineArgs, type Accelerator, type BootVariant, type QemuMachine } from '../qemu/machine.js';

/** The suite the check lines become, and the one the final marker becomes. */
export const CHECK_SUITE = 'clawos-checks';
export const MARKER_SUITE = 'clawos-boot';
/** The marker's test case (LAVA lower-cases a case id and turns non-word runs into `_`). */
export const MARKER_CASE = 'clawos_boot';

/**
 * The monitors: the checks between CLAWOS-INIT and the marker, then the marker.
 * The first monitor ends just before the marker (a look-ahead consumes nothing),
 * so the second one starts on it and records it as a case. LAVA matches the
 * earliest pattern in the console buffer, so `end` of the second monitor (the
 * marker's count) comes after its `pattern` (the marker's word).
 */
export const MONITORS = [
  {
    name: CHECK_SUITE,
    start: 'CLAWOS-INIT ',
    end: '(?=CLAWOS-BOOT-(?:OK|FAILED)\\s)',
    pattern: 'CLAWOS-CHECK name=(?P<test_case_id>[A-Za-z0-9_.-]+) result=(?P<result>pass|fail)\\s',
  },
  {
    name: MARKER_SUITE,
    start: '(?=CLAWOS-BOOT-(?:OK|FAILED)\\s)',
    end: '(?:passed|failed)=\\S*\\s',
    pattern: '(?P<test_case_id>CLAWOS-BOOT)-(?P<result>OK|FAILED)\\s',
    fixupdict: { OK: 'pass', FAILED: 'fail' },
  },
] as const;

/** How the job names its ISO and what vouches for it (recorded in the job's metadata). */
export interface JobIso {
  /** Where the worker downloads it: https://…, or file:///… for a local dispatcher. */
  url: string;
  sha256: string;
  /** What vouched for it when exported: a verified bundle's run, or `unverified (--allow-unverified)`. */
  vouched_by: string;
}

/** A firmware file as the worker finds it: its URL and sha256. */
export interface JobFirmware {
  url: string;
  sha256: string;
}

export interface LavaJobInput {
  machine: QemuMachine;
  variant: BootVariant;
  /** Debian's name for the arch (specs/arch: debian_arch), the `arch` of LAVA's qemu context. */
  debianArch: string;
  accel: Accelerator;
  iso: JobIso;
  /** By firmware placeholder name (variant.firmware[].name). */
  firmware: Record<string, JobFirmware>;
  expectedChecks: readonly string[];
  /** clawos-build's version, recorded in the metadata. */
  generator: string;
}

/** One LAVA job, as data (stringify with jobYaml) and with what ingest binds it to. */
export interface LavaJob {
  job_name: string;
  device_type: string;
  [key: string]: unknown;
}

/** The job's file name: one per arch and variant. */
export function jobFileName(arch: string, variant: string): string {
  return `clawos-${arch}-${variant}.yaml`;
}

/** The device description's file name (lava-run --device): one per arch and machine type. */
export function deviceFileName(arch: string, variant: string): string {
  return `clawos-${arch}-${variant}.device.yaml`;
}

/** QEMU's argv as split into option groups: a flag and the values up to the next flag. */
export function optionGroups(args: readonly string[]): string[][] {
  const groups: string[][] = [];
  for (const a of args) {
    if (a.startsWith('-') || !groups.length) groups.push([a]);
    else groups.at(-1)!.push(a);
  }
  return groups;
}

const PLACEHOLDER = /\{([a-z0-9_]+)\}/g;

/** One shell word for LAVA's command line (it joins the argv with spaces and splits it again). */
function word(s: string): string {
  return /^[A-Za-z0-9_\-+=.,/:@%{}]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The variant's arguments split the way LAVA takes them: each group naming one
 * firmware placeholder becomes that image's `image_arg`; the others are plain
 * QEMU options. A group naming two placeholders cannot be an image_arg.
 */
export function splitVariantArgs(m: QemuMachine, v: BootVariant): { imageArgs: Record<string, string>; options: string[] } {
  const imageArgs: Record<string, string[]> = {};
  const options: string[] = [];
  for (const g of optionGroups(v.args)) {
    const names = [...new Set(g.flatMap((a) => [...a.matchAll(PLACEHOLDER)].map((x) => x[1]!)))];
    if (names.length > 1) throw new UserError(`qemu/${m.arch}.yaml: variant ${v.name}: "${g.join(' ')}" names ${names.map((n) => `{${n}}`).join(' and ')}; a LAVA image_arg can carry one image`);
    if (names.length === 1) (imageArgs[names[0]!] ??= []).push(...g);
    else options.push(...g);
  }
  return { imageArgs: Object.fromEntries(Object.entries(imageArgs).map(([k, g]) => [k, g.map(word).join(' ')])), options };
}

/** The machine's QEMU options for a variant, without the ISO and firmware (those are images). */
export function qemuOptions(m: QemuMachine, v: BootVariant, accel: Accelerator): string[] {
  return [...machineArgs(m, v, accel), ...splitVariantArgs(m, v).options];
}

function seconds(s: number): { seconds: number } {
  return { seconds: Math.max(1, Math.ceil(s)) };
}

/** The time LAVA may spend copying the ISO and firmware into the job's directory. */
export const DEPLOY_TIMEOUT_S = 300;

export function renderLavaJob(o: LavaJobInput): LavaJob {
  const { machine: m, variant: v } = o;
  if (!m.lava) throw new UserError(`qemu/${m.arch}.yaml has no lava: section (its LAVA device type)`, 'add lava: { device_type: qemu } to the machine definition');
  const split = splitVariantArgs(m, v);
  const images: Record<string, unknown> = {
    iso: { url: o.iso.url, sha256sum: o.iso.sha256, image_arg: (v.iso_args ?? m.iso_args).map(word).join(' ') },
  };
  for (const fw of v.firmware) {
    const at = o.firmware[fw.name];
    if (!at) throw new UserError(`variant ${v.name}: no URL for firmware ${fw.name} (${fw.path})`);
    const arg = split.imageArgs[fw.name];
    if (!arg) throw new UserError(`qemu/${m.arch}.yaml: variant ${v.name}: firmware ${fw.name} is not used by any argument`);
    images[fw.name] = { url: at.url, sha256sum: at.sha256, image_arg: arg };
  }
  // The boot and the monitors share the accelerator's boot timeout (qemu/<arch>.yaml timeout_s):
  // the guest must reach its marker within it, as under the built-in boot lab.
  const boot = o.accel.timeout_s;
  return {
    job_name: `clawos ${m.arch} ${v.name} iso ${o.iso.sha256.slice(0, 12)}`,
    device_type: m.lava.device_type,
    visibility: 'public',
    priority: 'medium',
    timeouts: {
      job: seconds(DEPLOY_TIMEOUT_S + 2 * boot),
      action: seconds(boot),
      connection: seconds(boot),
    },
    // What a lab's qemu device type template reads (arch, machine, cpu, memory, extra options).
    context: {
      arch: o.debianArch,
      machine: v.machine ?? m.machine,
      cpu: o.accel.cpu,
      memory: parseInt(m.memory, 10) * (m.memory.endsWith('G') ? 1024 : 1),
      no_kvm: o.accel.name !== 'kvm',
      extra_options: [...m.common_args, ...split.options],
    },
    metadata: {
      'clawos.arch': m.arch,
      'clawos.variant': v.name,
      'clawos.firmware_kind': v.firmware_kind ?? 'none',
      'clawos.iso_sha256': o.iso.sha256,
      'clawos.iso_vouched_by': o.iso.vouched_by,
      'clawos.expected_checks': o.expectedChecks.join(','),
      'clawos.accel': o.accel.name,
      'clawos.generator': o.generator,
    },
    actions: [
      { deploy: { to: 'tmpfs', timeout: seconds(DEPLOY_TIMEOUT_S), images } },
      { boot: { method: 'qemu', media: 'tmpfs', timeout: seconds(boot) } },
      { test: { timeout: seconds(boot), monitors: MONITORS.map((x) => ({ ...x })) } },
    ],
  };
}

/**
 * A minimal device description for lava-run (no lava-server, no templates): the
 * QEMU binary and the variant's options, as a lab's qemu device type renders
 * them from the job context.
 */
export function renderLavaDevice(o: { machine: QemuMachine; variant: BootVariant; debianArch: string; accel: Accelerator }): Record<string, unknown> {
  const { machine: m, variant: v } = o;
  if (!m.lava) throw new UserError(`qemu/${m.arch}.yaml has no lava: section (its LAVA device type)`);
  const boot = o.accel.timeout_s;
  return {
    device_type: m.lava.device_type,
    available_architectures: [o.debianArch],
    // lava-run's RetryAction reads it: one attempt; clawos-build retries a failed job itself.
    constants: { boot_retry: 1, failure_retry: 1 },
    actions: {
      // LAVA's tmpfs deploy of `images` is its `image` deploy method.
      deploy: { methods: { image: { parameters: {} } }, connections: { serial: null } },
      boot: {
        connections: { serial: null },
        methods: { qemu: { parameters: { command: m.binary, options: qemuOptions(m, v, o.accel) } } },
      },
    },
    timeouts: { actions: {}, connections: {}, job: seconds(DEPLOY_TIMEOUT_S + 2 * boot) },
  };
}

/** YAML text of a job or device, with a first comment line saying where it came from. */
export function jobYaml(doc: unknown, comment: string): string {
  return `# ${comment}\n${stringify(doc, { lineWidth: 0 })}`;
}
