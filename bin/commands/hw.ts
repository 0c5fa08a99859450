/**
 * `clawos-build hw record|prepare|list` (issue 15): hardware testers' results.
 *   record SOURCE   read a stick, a disk image or a serial console capture, judge it,
 *                   sign it with the tester key of the key dir, append it to the vault;
 *                   exit 0 for a recorded PASS, 1 for a recorded FAIL or a refusal
 *                   (missing, truncated, another ISO's results: nothing appended)
 *   prepare DEVICE  give a stick written by hand (dd) its empty results area, after
 *                   checking it holds the ISO (--iso)
 *   list            every record, whether it counts (trusted tester key, this build's
 *                   ISO) and what G-07 says of the build's ISOs
 */
import { resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { recordHardware, machineLabel } from '../../host/hw-record.js';
import { readResultsArea, writeResultsArea, AREA_BYTES } from '../../host/results-area.js';
import { defaultKeyDir, defaultTrustFile } from '../../vault/key-dir.js';
import { loadTrust } from '../../vault/keys.js';
import { readHwRecords } from '../../vault/hw-record.js';
import { loadArches } from '../../pipeline/catalog/arch.js';
import { judgeHardware, machineName } from '../../pipeline/boot/hw-verdict.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';

interface HwArgs {
  positionals: string[];
  buildDir: string;
  keyDir?: string;
  trust?: string;
  iso?: string;
  sha256?: string;
  json: boolean;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as HwArgs;
  const [sub, target, extra] = a.positionals;
  const keyDir = resolve(a.keyDir ?? defaultKeyDir(io.env));
  const trustFile = resolve(a.trust ?? defaultTrustFile(keyDir));
  const buildDir = resolve(a.buildDir);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}" for hw ${sub}`);
  if (sub === 'record') {
    if (!target) throw new UsageError('hw record needs DEVICE, IMAGE or SERIAL-LOG');
    const r = await recordHardware({ source: target, buildDir, repoRoot: io.repoRoot, keyDir, trustFile, iso: a.iso, sha256: a.sha256 });
    if (!r.ok) {
      if (a.json) printJson(io, { ok: false, recorded: false, reason: r.reason, message: r.message });
      else io.printErr(`clawos-build: hw record: ${r.message}; nothing was recorded\n`);
      return EXIT.failed;
    }
    const rec = r.record;
    const passed = rec.verdict === 'PASS';
    if (a.json) printJson(io, { ok: passed, recorded: true, id: r.id, file: r.file, record: rec });
    else {
      io.print(
        `hw record ${r.id.slice(0, 16)}: ${rec.iso.arch} ISO sha256 ${rec.iso.sha256} on ${machineLabel(rec.machine)}\n` +
          `  ${rec.verdict}: ${rec.message}\n` +
          `  CPU ${rec.machine.cpu_model}, ${rec.machine.mem_total_kb ?? '?'} kB; read from ${rec.source.kind} ${rec.source.path}\n` +
          `  signed by tester ${rec.tester.name} (key ${rec.tester.keyid.slice(0, 16)}); ${r.file}\n`,
      );
    }
    return passed ? EXIT.ok : EXIT.failed;
  }
  if (sub === 'prepare') {
    if (!target) throw new UsageError('hw prepare needs DEVICE (the stick the ISO was written to)');
    if (!a.iso) throw new UsageError('hw prepare needs --iso ISO: the ISO the stick holds');
    const isoSt = await stat(a.iso).catch(() => null);
    if (!isoSt?.isFile()) throw new UserError(`--iso ${a.iso} is not a readable file`);
    const isoSha = await sha256File(a.iso);
    const { createHash } = await import('node:crypto');
    const { open } = await import('node:fs/promises');
    // The stick must hold exactly this ISO: an area for another ISO's results would bind them wrongly.
    const fh = await open(target, 'r');
    const h = createHash('sha256');
    try {
      const buf = Buffer.allocUnsafe(4 << 20);
      let pos = 0;
      while (pos < isoSt.size) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, isoSt.size - pos), pos);
        if (!bytesRead) break;
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    } finally {
      await fh.close();
    }
    const onStick = h.digest('hex');
    if (onStick !== isoSha) throw new UserError(`${target} does not hold ${a.iso}: its first ${isoSt.size} bytes have sha256 ${onStick}, the ISO ${isoSha}`, 'write it first: clawos-build flash ISO DEVICE (which adds the results area itself)');
    const before = await readResultsArea(target);
    if (before.ok || before.reason === 'truncated') throw new UserError(`${target} already holds results (${before.ok ? 'complete' : 'damaged'}); read them with clawos-build hw record ${target} before preparing it again`);
    const w = await writeResultsArea(target, { iso_sha256: isoSha, iso_bytes: isoSt.size });
    if (a.json) printJson(io, { ok: true, device: target, iso_sha256: isoSha, offset: w.offset, bytes: AREA_BYTES });
    else io.print(`hw prepare: empty results area (${AREA_BYTES} bytes) at byte ${w.offset} of ${target}, for ISO sha256 ${isoSha}\n`);
    return EXIT.ok;
  }
  if (sub === 'list') {
    if (target) throw new UsageError(`unexpected argument "${target}" for hw list`);
    const trust = await loadTrust(trustFile);
    const recs = await readHwRecords(buildDir, trust);
    const views = recs.map((r) => ({ id: r.id, counted: r.counted, why: r.counted ? null : `${r.code}: ${r.detail}`, record: r.record }));
    const isos: { arch: string; sha256: string }[] = [];
    if (a.sha256 || a.iso) {
      // One ISO named: judged for the arches its records say it is for.
      const sha = a.sha256?.toLowerCase() ?? (await sha256File(a.iso!));
      for (const arch of new Set(views.filter((v) => v.record?.iso.sha256 === sha).map((v) => v.record!.iso.arch))) isos.push({ arch, sha256: sha });
      if (!isos.length) isos.push({ arch: '?', sha256: sha });
    } else {
      for (const arch of (await loadArches(io.repoRoot)).keys()) {
        const p = resolve(buildDir, 'build-engineer', arch, `clawos-${arch}.iso`);
        if ((await stat(p).catch(() => null))?.isFile()) isos.push({ arch, sha256: await sha256File(p) });
      }
    }
    const j = judgeHardware(views, isos);
    if (a.json) {
      printJson(io, { trust: trustFile, isos, g07: { status: j.status, message: j.message }, machines: j.rows });
      return EXIT.ok;
    }
    io.print(`hardware records in ${buildDir}/vault/hw (trust file ${trustFile}):\n`);
    for (const r of j.rows) {
      io.print(`  ${r.record.slice(0, 16)}  ${r.arch.padEnd(8)} ${r.verdict.padEnd(5)} ${machineName(r)} ${r.boot_path}, by ${r.tester} at ${r.recorded_at}${r.not_counted ? `\n      NOT COUNTED: ${r.not_counted}` : ''}\n`);
    }
    if (!j.rows.length) io.print('  (none)\n');
    io.print(`G-07 for ${isos.map((i) => `${i.arch} ${i.sha256.slice(0, 16)}…`).join(', ') || 'no ISO'}: ${j.status}: ${j.message}\n`);
    return EXIT.ok;
  }
  throw new UsageError(sub ? `unknown hw subcommand "${sub}" (record, prepare or list)` : 'hw needs a subcommand: record, prepare or list');
}
