/**
 * QEMU machine definitions: data in qemu/<arch>.yaml, checked against
 * specs/schemas/qemu-machine.schema.json. Everything arch-specific about a boot
 * (binary, machine, firmware, how the ISO is attached) comes from here, so the
 * code never branches on the arch name.
 */
import { readFileSync } from 'node:fs';
import { access, constants, copyFile, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileSchema } from '../lib/data.js';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../lib/errors.js';

export interface FirmwareFile {
  /** Placeholder name used in args. */
  name: string;
  path: string;
  /** Debian package that provides the file. */
  package: string;
  /** The placeholder expands to a per-boot copy (UEFI variable stores). */
  writable_copy?: boolean;
}

export type FirmwareKind = 'bios' | 'uefi';

export interface BootVariant {
  name: string;
  description: string;
  machine?: string;
  /** What `boot --firmware bios|uefi` selects; absent: only selectable by name. */
  firmware_kind?: FirmwareKind;
  firmware: FirmwareFile[];
  args: string[];
  /** How this variant attaches the ISO (a USB stick), instead of QemuMachine.iso_args. */
  iso_args?: string[];
  /** In-guest checks this variant expects on top of the expected checks file (data, not code: secureboot). */
  expect_checks?: string[];
  /** Text the serial log must contain for a PASS (the kernel's own Secure Boot report). */
  expect_log?: string[];
  /** Secure Boot on: the certificate its VARS enrol (a UKI signed with another key is refused). */
  secure_boot?: { enrolled_cert_sha256: string };
}

export interface Accelerator {
  name: 'kvm' | 'tcg';
  cpu: string;
  timeout_s: number;
  host_arches?: string[];
  device?: string;
  probe_timeout_s?: number;
  /** The guest runs on host CPU time: timeout_s grows with boots side by side (bootTimeout). */
  load_scaling?: { max_factor: number };
}

export interface QemuMachine {
  arch: string;
  binary: string;
  binary_package?: string;
  packages: string[];
  machine: string;
  memory: string;
  smp?: number;
  common_args: string[];
  iso_args: string[];
  direct_kernel?: { args: string[]; initrd_args?: string[] };
  accelerators: Accelerator[];
  variants: BootVariant[];
  /** How a LAVA lab runs this machine (clawos-build lava export). */
  lava?: { device_type: string };
}

/** What the guest boots from. */
export type BootMedia = { iso: string } | { kernel: string; initrd?: string; append?: string };


function schemaPath(repoRoot: string): string {
  return join(repoRoot, 'specs', 'schemas', 'qemu-machine.schema.json');
}

function validate(doc: unknown, display: string, schemaText: string): QemuMachine {
  // The one schema registry (lib/data.ts): compiled once per schema text.
  const validator = compileSchema(JSON.parse(schemaText) as object);
  if (!validator(doc)) {
    const errs = (validator.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'invalid'}`).join('; ');
    throw new UserError(`${display}: not a valid QEMU machine definition: ${errs}`);
  }
  const m = doc as QemuMachine;
  // What the schema cannot say: names must be unique and placeholders must resolve.
  const seen = new Set<string>();
  for (const v of m.variants) {
    if (seen.has(v.name)) throw new UserError(`${display}: variant ${v.name} is defined twice`);
    seen.add(v.name);
    const known = new Set(['iso', ...v.firmware.map((f) => f.name)]);
    for (const a of [...v.args, ...(v.iso_args ?? m.iso_args)]) {
      for (const p of placeholders(a)) {
        if (!known.has(p)) throw new UserError(`${display}: variant ${v.name}: unknown placeholder {${p}} in "${a}"`);
      }
    }
  }
  return m;
}

/** Load and check qemu/<arch>.yaml. `relPath` is repo-relative (ArchSpec.qemu). */
export async function loadMachine(repoRoot: string, relPath: string): Promise<QemuMachine> {
  const abs = resolve(repoRoot, relPath);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    throw new UserError(`${relPath}: cannot read QEMU machine definition: ${(err as Error).message}`);
  }
  return validate(parseDoc(text, relPath), relPath, await readFile(schemaPath(repoRoot), 'utf8'));
}

/** Synchronous variant for Step.toolPackages(), which cannot await. */
export function loadMachineSync(repoRoot: string, relPath: string): QemuMachine {
  const text = readFileSync(resolve(repoRoot, relPath), 'utf8');
  // Fingerprinting asks for the machine of every QEMU task instance, several times a
  // run: the parsed and checked definition is reused while the file's text is the same.
  const key = `${relPath}\0${text}`;
  const hit = syncMemo.get(key);
  if (hit) return structuredClone(hit);
  const m = validate(parseDoc(text, relPath), relPath, readFileSync(schemaPath(repoRoot), 'utf8'));
  syncMemo.set(key, structuredClone(m));
  return m;
}
const syncMemo = new Map<string, QemuMachine>();

function parseDoc(text: string, display: string): unknown {
  try {
    return parseYaml(text);
  } catch (err) {
    throw new UserError(`${display}: YAML syntax error: ${(err as Error).message}`);
  }
}

/** The repository root as seen from this module (works from qemu/ and from dist/qemu/). */
export function findRepoRoot(probe = join('specs', 'schemas', 'qemu-machine.schema.json')): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      readFileSync(join(dir, probe));
      return dir;
    } catch {
      /* keep climbing */
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export function findVariant(m: QemuMachine, name: string): BootVariant {
  const v = m.variants.find((x) => x.name === name);
  if (!v) throw new UserError(`QEMU machine ${m.arch} has no boot variant "${name}" (have: ${m.variants.map((x) => x.name).join(', ')})`);
  return v;
}

export function findAccelerator(m: QemuMachine, name: string): Accelerator {
  const a = m.accelerators.find((x) => x.name === name);
  if (!a) throw new UserError(`QEMU machine ${m.arch} does not allow accelerator "${name}"`);
  return a;
}

/** The machine, accelerator, CPU, memory and common options of a boot: the same for the boot lab and a LAVA job. */
export function machineArgs(m: QemuMachine, v: BootVariant, accel: Accelerator): string[] {
  return ['-machine', v.machine ?? m.machine, '-accel', accel.name, '-cpu', accel.cpu, '-m', m.memory, '-smp', String(m.smp ?? 1), ...m.common_args];
}

/**
 * The variants `--firmware SEL` names: a variant name, or a firmware kind
 * (bios, uefi) standing for every variant of that kind, in file order.
 */
export function selectVariants(m: QemuMachine, sel?: string): BootVariant[] {
  if (!sel) return [...m.variants];
  const byName = m.variants.find((v) => v.name === sel);
  if (byName) return [byName];
  const have = m.variants.map((v) => (v.firmware_kind ? `${v.name} (${v.firmware_kind})` : v.name)).join(', ');
  if (sel === 'bios' || sel === 'uefi') {
    const kind = m.variants.filter((v) => v.firmware_kind === sel);
    if (kind.length) return kind;
    throw new UserError(`${m.arch} has no ${sel} boot variant`, `choose one of: ${have}`);
  }
  throw new UserError(`unknown --firmware ${sel} for ${m.arch}`, `choose bios, uefi or one of: ${have}`);
}

/**
 * Why a Secure Boot variant is NOT_CONFIGURED for a UKI signed with the certificate
 * `certSha256` (the key dir's Secure Boot certificate; undefined: no Secure Boot key,
 * so no signed UKI): its firmware enrols another certificate and would refuse the
 * UKI, so it is never booted. null: the variant can boot it (or has Secure Boot off).
 * One rule for G-06, `boot` and `lava export`.
 */
export function secureBootNotConfigured(v: BootVariant, certSha256: string | undefined): string | null {
  const sb = v.secure_boot;
  if (!sb || certSha256 === sb.enrolled_cert_sha256) return null;
  return certSha256
    ? `${v.name}: NOT_CONFIGURED: its firmware variables enrol certificate sha256 ${sb.enrolled_cert_sha256.slice(0, 16)}…, but the UKI is signed with ${certSha256.slice(0, 16)}… (the key dir's secureboot.crt); give this variant VARS that enrol it (docs/boot-lab.md, virt-fw-vars)`
    : `${v.name}: NOT_CONFIGURED: no Secure Boot key in the key dir, so no signed UKI to boot`;
}

/** What a variant's boot must show on top of the expected checks file: its expect_checks and expect_log. */
export function variantExpectations(v: BootVariant, expectedChecks: readonly string[]): { checks: string[]; log: string[] } {
  return { checks: [...expectedChecks, ...(v.expect_checks ?? []).filter((n) => !expectedChecks.includes(n))], log: [...(v.expect_log ?? [])] };
}

export interface BootTimeout {
  seconds: number;
  /** The multiplier applied to the accelerator's timeout_s (1 = none). */
  factor: number;
  /** How the figure came about, for the output. */
  note: string;
}

/**
 * The time one boot gets: the accelerator's timeout_s (per arch and accelerator,
 * from qemu/<arch>.yaml), scaled up when `concurrent` boots of `smp` vCPUs each
 * share `hostCpus` CPUs and the accelerator runs on host CPU time (load_scaling).
 */
export function bootTimeout(m: QemuMachine, accel: Accelerator, load: { concurrent: number; hostCpus: number }): BootTimeout {
  const base = accel.timeout_s;
  const ls = accel.load_scaling;
  if (!ls) return { seconds: base, factor: 1, note: `${base} s (${m.arch} ${accel.name} timeout_s)` };
  const demand = (Math.max(1, load.concurrent) * (m.smp ?? 1)) / Math.max(1, load.hostCpus);
  const factor = Math.min(ls.max_factor, Math.max(1, demand));
  const rounded = Math.round(factor * 100) / 100;
  const seconds = Math.ceil(base * factor);
  return {
    seconds,
    factor: rounded,
    note:
      factor === 1
        ? `${base} s (${m.arch} ${accel.name} timeout_s; ${load.concurrent} boot(s) at once on ${load.hostCpus} host CPU(s) need no scaling)`
        : `${seconds} s (${m.arch} ${accel.name} timeout_s ${base} s x ${rounded} for ${load.concurrent} boots at once on ${load.hostCpus} host CPU(s)${factor === ls.max_factor ? ', capped by max_factor' : ''})`,
  };
}

function placeholders(arg: string): string[] {
  return [...arg.matchAll(/\{([a-z0-9_]+)\}/g)].map((m) => m[1]!);
}

/**
 * Expand {name} placeholders. A value right after "=" sits inside a QEMU option
 * list (file=…), where a comma must be doubled; elsewhere it is taken verbatim.
 */
export function expandArg(arg: string, values: Record<string, string>): string {
  return arg.replace(/(=?)\{([a-z0-9_]+)\}/g, (_all, eq: string, name: string) => {
    const v = values[name];
    if (v === undefined) throw new UserError(`QEMU argument "${arg}": no value for {${name}}`);
    return eq ? `=${v.replace(/,/g, ',,')}` : v;
  });
}

/** Firmware files of a variant that are not there, as "path (Debian package pkg)". */
export async function missingFirmware(v: BootVariant): Promise<string[]> {
  const missing: string[] = [];
  for (const f of v.firmware) {
    try {
      await access(f.path, constants.R_OK);
    } catch {
      missing.push(`${f.path} (Debian package ${f.package})`);
    }
  }
  return missing;
}

export interface PreparedBoot {
  argv: string[];
  /** Per-boot copies made for writable firmware files. */
  copies: string[];
}

/**
 * The full QEMU argv for one boot. Writable firmware (UEFI vars) is copied into
 * `scratchDir` first: the system file is never opened for writing.
 */
export async function prepareBoot(opts: {
  machine: QemuMachine;
  variant: BootVariant;
  accel: Accelerator;
  media: BootMedia;
  scratchDir: string;
  binary?: string;
}): Promise<PreparedBoot> {
  const { machine: m, variant: v, accel, media, scratchDir } = opts;
  const values: Record<string, string> = {};
  const copies: string[] = [];
  for (const f of v.firmware) {
    if (f.writable_copy) {
      const copy = join(scratchDir, `${v.name}.${basename(f.path)}`);
      await copyFile(f.path, copy);
      copies.push(copy);
      values[f.name] = copy;
    } else {
      values[f.name] = f.path;
    }
  }
  let mediaArgs: string[];
  if ('iso' in media) {
    values.iso = media.iso;
    mediaArgs = v.iso_args ?? m.iso_args;
  } else {
    if (!m.direct_kernel) throw new UserError(`QEMU machine ${m.arch} has no direct_kernel section`);
    values.kernel = media.kernel;
    values.append = media.append ?? '';
    mediaArgs = [...m.direct_kernel.args];
    if (media.initrd) {
      values.initrd = media.initrd;
      mediaArgs.push(...(m.direct_kernel.initrd_args ?? []));
    }
  }
  const argv = [
    opts.binary ?? m.binary,
    ...machineArgs(m, v, accel),
    ...v.args.map((a) => expandArg(a, values)),
    ...mediaArgs.map((a) => expandArg(a, values).trimEnd()),
  ];
  return { argv, copies };
}
