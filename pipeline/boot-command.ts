/**
 * `clawos-build boot`: boot a given ISO under QEMU with every firmware variant
 * of the arch's machine definition (or one, with --firmware), check it from the
 * serial console, and save each record and serial log under the build dir.
 */
import { access, constants } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../lib/errors.js';
import { bootIso, type BootRecord } from '../qemu/boot.js';
import { chooseAccelerator } from '../qemu/kvm-probe.js';
import { loadMachine } from '../qemu/machine.js';
import { selectArches } from './session.js';
import { loadExpectedChecks } from './steps/qemu-boot.js';
import { formatDuration } from './reporter.js';

export interface BootCommandOptions {
  repoRoot: string;
  iso?: string;
  arch: string[] | null;
  firmware?: string;
  repeat: number;
  buildDir: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
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

export async function bootCommand(o: BootCommandOptions): Promise<number> {
  if (!o.iso) throw new UserError('boot needs --iso FILE');
  if (!o.arch || o.arch.length !== 1) throw new UserError('boot needs exactly one --arch (x86_64 or aarch64)', 'e.g. clawos-build boot --iso build/build-engineer/x86_64/clawos-x86_64.iso --arch x86_64');
  const iso = resolve(o.iso);
  try {
    await access(iso, constants.R_OK);
  } catch {
    throw new UserError(`ISO not found or not readable: ${o.iso}`);
  }
  const arch = [...(await selectArches(o.repoRoot, o.arch)).values()][0]!;
  const machine = await loadMachine(o.repoRoot, arch.qemu);
  const all = machine.variants.map((v) => v.name);
  if (o.firmware && !all.includes(o.firmware)) throw new UserError(`unknown --firmware ${o.firmware} for ${arch.name}`, `choose one of: ${all.join(', ')}`);
  const variants = o.firmware ? [o.firmware] : all;
  const expected = await loadExpectedChecks(join(o.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch.name, arch.guest as unknown as Record<string, unknown>);
  const buildDir = resolve(o.buildDir);
  const decision = await chooseAccelerator({ machine, probe: { variant: variants[0], media: { iso } }, cacheFile: join(buildDir, 'cache', 'qemu-accel.json') });
  if (!o.json) o.printErr(`accelerator: ${decision.accel} (${decision.note})\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const records: BootRecord[] = [];
  for (let i = 0; i < o.repeat; i++) {
    for (const variant of variants) {
      const outDir = join(buildDir, 'boots', arch.name, o.repeat > 1 ? `${stamp}-${i + 1}` : stamp);
      const rec = await bootIso({ machine, variant, iso, accel: decision.accel, accelNote: decision.note, outDir, expectedChecks: expected });
      records.push(rec);
      if (!o.json) o.print(`${describeBoot(rec)}\n  record: ${join(outDir, `${variant}.json`)}\n`);
    }
  }
  if (o.json) o.print(JSON.stringify({ ok: records.every((r) => r.verdict === 'PASS'), boots: records }, null, 2) + '\n');
  if (records.every((r) => r.verdict === 'PASS')) return 0;
  return records.some((r) => r.verdict === 'FAIL' || r.verdict === 'TIMEOUT') ? 1 : 4;
}
