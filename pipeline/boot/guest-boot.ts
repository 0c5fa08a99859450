/**
 * What a boot step needs to know about the guest and its machine, shared by
 * qemu-boot, apparmor-flow and `clawos-build boot`: the in-guest checks an arch
 * must report and the Debian packages its QEMU machine runs on.
 */
import { readFile } from 'node:fs/promises';
import { yamlValue } from '../../lib/yaml-source.js';
import { UserError } from '../../lib/errors.js';
import type { ArchSpec } from '../catalog/arch.js';
import { findRepoRoot, loadMachineSync, type QemuMachine } from '../../qemu/machine.js';
import { lockedFile, type DebContext } from '../inputs/debs.js';

/**
 * The checks one arch must report: entries without `arches` apply to every arch;
 * an entry with `when: KEY` applies only where the arch's guest.KEY list is non-empty
 * (cpu-flags: only arches that name CPU flags).
 */
export async function loadExpectedChecks(file: string, arch: string, guest: Record<string, unknown> = {}): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`expected checks file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = yamlValue(text, file);
  } catch (err) {
    throw new UserError(`expected checks file ${file}: YAML syntax error: ${(err as Error).message}`);
  }
  const list = (doc as { checks?: unknown } | null)?.checks;
  if (!Array.isArray(list)) throw new UserError(`expected checks file ${file}: no "checks:" list`);
  const names: string[] = [];
  for (const [i, entry] of list.entries()) {
    const e = typeof entry === 'string' ? { name: entry } : (entry as { name?: unknown; arches?: unknown } | null);
    if (!e || typeof e.name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(e.name)) {
      throw new UserError(`expected checks file ${file}: checks[${i}] has no usable name`);
    }
    if (e.arches !== undefined && !(Array.isArray(e.arches) && e.arches.every((a) => typeof a === 'string'))) {
      throw new UserError(`expected checks file ${file}: checks[${i}] (${e.name}): arches must be a list of arch names`);
    }
    // Expected only in the boot variants that list it (qemu/<arch>.yaml expect_checks), e.g. secureboot.
    if ((e as { variant_only?: unknown }).variant_only === true) continue;
    const when = (e as { when?: unknown }).when;
    if (when !== undefined) {
      if (typeof when !== 'string') throw new UserError(`expected checks file ${file}: checks[${i}] (${e.name}): when must name a guest field`);
      const v = guest[when];
      if (!Array.isArray(v) || v.length === 0) continue;
    }
    if (e.arches === undefined || (e.arches as string[]).includes(arch)) {
      if (!names.includes(e.name)) names.push(e.name);
    }
  }
  return names;
}

function machineFor(arch: ArchSpec | null): QemuMachine | null {
  const root = findRepoRoot();
  if (!arch || !root) return null;
  try {
    return loadMachineSync(root, arch.qemu);
  } catch {
    // A broken machine file fails the step itself, with the full error.
    return null;
  }
}

/** The emulator and firmware packages of the arch's machine (a tool version input of every boot step). */
export function machinePackages(arch: ArchSpec | null): string[] {
  return [...(machineFor(arch)?.packages ?? [])].sort();
}

/**
 * The machine with every firmware file the lock pins replaced by a verified
 * path: the host's copy when its sha256 is the locked one, else the copy in
 * the locked package (fetched by the lock). A firmware file whose package the
 * lock does not pin is refused: booting on whatever the host has installed is
 * what the lock exists to prevent.
 */
export async function lockMachineFirmware(ctx: DebContext, arch: ArchSpec, machine: QemuMachine): Promise<QemuMachine> {
  const variants = [];
  for (const v of machine.variants) {
    const firmware = [];
    for (const fw of v.firmware ?? []) {
      if (!fw.package) throw new UserError(`${arch.qemu}: variant ${v.name}: firmware ${fw.name} names no package, so the lock cannot pin it`);
      const got = await lockedFile(ctx, arch, fw.package, fw.path);
      firmware.push({ ...fw, path: got.path });
    }
    variants.push({ ...v, firmware });
  }
  return { ...machine, variants };
}
