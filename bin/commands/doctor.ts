/**
 * `clawos-build doctor [--fix] [--json]`: the terminal side of host/doctor.ts.
 * Exit 0 when everything the build needs is present, 4 (infrastructure) otherwise.
 * --fix runs the printed apt/dpkg commands (root only), fetches the target-arch
 * packages into the build cache, then checks again and reports that.
 */
import type { ParsedArgs } from '../args.js';
import type { CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { applyFixes, formatDoctorReport, runDoctor, type DoctorOptions } from '../../host/doctor.js';

export interface DoctorCommandOptions {
  repoRoot: string;
  buildDir: string;
  json: boolean;
  fix?: boolean;
}

export interface DoctorIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Tests: fake PATH, fake file tree, no KVM probe … */
  doctor?: Partial<DoctorOptions>;
  isRoot?: boolean;
}

export async function doctorCommand(o: DoctorCommandOptions, io: DoctorIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const opts: DoctorOptions = { repoRoot: o.repoRoot, buildDir: o.buildDir, ...io.doctor };
  const before = await runDoctor(opts);
  if (!o.fix) {
    const code = before.ok ? EXIT.ok : EXIT.infra;
    if (o.json) io.stdout.write(JSON.stringify({ ...before, exit_code: code }, null, 2) + '\n');
    else io.stdout.write(formatDoctorReport(before));
    return code;
  }
  if (!o.json) io.stdout.write(formatDoctorReport(before));
  const fix = await applyFixes(before, { ...opts, isRoot: io.isRoot, log: o.json ? undefined : (l) => io.stderr.write(`doctor --fix: ${l}\n`) });
  if (fix.refused) {
    if (o.json) io.stdout.write(JSON.stringify({ ok: false, exit_code: EXIT.infra, before, fix, after: null }, null, 2) + '\n');
    else io.stderr.write(`clawos-build: ${fix.refused}\n`);
    return EXIT.infra;
  }
  const after = fix.ran.length ? await runDoctor(opts) : before;
  const code = after.ok ? EXIT.ok : EXIT.infra;
  if (o.json) {
    io.stdout.write(JSON.stringify({ ok: after.ok, exit_code: code, before, fix, after }, null, 2) + '\n');
    return code;
  }
  if (!fix.ran.length) {
    io.stdout.write('doctor --fix: nothing to fix\n');
    return code;
  }
  for (const r of fix.ran) io.stdout.write(`doctor --fix: ${r.ok ? 'ok' : 'FAILED'}: ${r.command}${r.ok ? '' : `: ${r.detail}`}\n`);
  io.stdout.write('after --fix:\n');
  io.stdout.write(formatDoctorReport(after));
  return code;
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return doctorCommand({ repoRoot: io.repoRoot, buildDir: a.buildDir as string, json: !!a.json, fix: !!a.fix });
}
