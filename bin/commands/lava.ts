/**
 * `clawos-build lava export|run|ingest`: ClawOS's boots as LAVA jobs
 * (host/lava-lab.ts). export writes the jobs; run exports them, runs each under
 * the real lava-run and ingests the results; ingest judges results folders
 * (from run, or saved from a LAVA server) and appends them to the vault.
 * Exit codes: 0 every job PASS, 1 a job did not PASS or export refused an ISO,
 * 3 bad input, 4 lava-run missing or not root.
 */
import { join, resolve } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { clawosVersion, selectArches } from '../../pipeline/run/session.js';
import { loadExpectedChecks } from '../../pipeline/boot/guest-boot.js';
import { findSecureBootKey, loadTestCerts } from '../../pipeline/boot/secureboot-key.js';
import { defaultKeyDir } from '../../vault/key-dir.js';
import { defaultLab, exportLavaJobs, findResultDirs, ingestLavaResults, LavaRefusal, runLavaJobs, type IngestItem } from '../../host/lava-lab.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';
import { buildDirArg } from '../path-args.js';

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

function itemLine(i: IngestItem): string {
  const j = i.judgement;
  const what = `${i.binding.arch} ${i.binding.variant}${i.attempt > 1 ? ` attempt ${i.attempt}` : ''}`;
  if (i.refused) return `${what}: not ingested: ${i.refused}`;
  return `${what}: ${j.verdict}${j.reason ? ` [${j.reason}]` : ''}: ${j.message}`;
}

/** Every attempt of a job PASS or not: the last attempt counts; differing attempts are flaky. */
function flaky(items: IngestItem[]): string[] {
  const by = new Map<string, string[]>();
  for (const i of items.filter((x) => !x.refused)) {
    const k = `${i.binding.arch} ${i.binding.variant}`;
    by.set(k, [...(by.get(k) ?? []), i.judgement.verdict]);
  }
  return [...by].filter(([, v]) => new Set(v).size > 1).map(([k, v]) => `${k}: ${v.join(' then ')}`);
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  const sub = a.positionals[0];
  if (!sub || !['export', 'run', 'ingest'].includes(sub)) throw new UsageError(`lava needs export, run or ingest${sub ? `, not "${sub}"` : ''}`);
  const buildDir = await buildDirArg(a.buildDir as string);
  const arches = await selectArches(io.repoRoot, a.arch as string[]);
  const generator = `clawos-build ${await clawosVersion(io.repoRoot)}`;
  const json = !!a.json;
  const say = (s: string) => {
    if (!json) io.printErr(`lava: ${s}\n`);
  };

  if (sub === 'ingest') {
    const roots = a.positionals.slice(1);
    if (!roots.length) throw new UsageError('lava ingest needs RESULTS: a results folder (job.yaml + lava-log.yaml), or a folder of them');
    const dirs: string[] = [];
    for (const r of roots) {
      const found = await findResultDirs(resolve(r));
      if (!found.length) throw new UserError(`${r}: no LAVA results here (a folder holding job.yaml and lava-log.yaml, or folders of them)`);
      dirs.push(...found);
    }
    if (a.firmware) throw new UsageError('--firmware goes with lava export or run: ingest takes every result it is given');
    if (a.iso && a.sha256) throw new UsageError('--iso and --sha256 do not go together: both name the ISO the results must be for');
    const res = await ingestLavaResults({ repoRoot: io.repoRoot, buildDir, dirs, iso: a.iso as string | undefined, isoSha256: a.sha256 as string | undefined, lab: (a.lab as string | undefined) ?? defaultLab(), arches, generator });
    return report(res.items, res.run_id, io, json);
  }

  const exportOpts = {
    repoRoot: io.repoRoot,
    buildDir,
    arches: [...arches.values()],
    iso: a.iso as string | undefined,
    isoUrl: a.isoUrl as string | undefined,
    allowUnverified: !!a.allowUnverified,
    bundle: a.bundle as string | undefined,
    trust: a.trust as string | undefined,
    generator,
    log: say,
    // The certificate the UKIs are signed with, as G-06 and boot take it: the key dir's Secure Boot key.
    secureBootCert: (await findSecureBootKey(defaultKeyDir(io.env), await loadTestCerts(io.repoRoot)))?.certSha256,
    firmware: a.firmware as string | undefined,
  };
  const base = resolve((a.out as string | undefined) ?? join(buildDir, 'lava', sub === 'export' ? 'jobs' : `run-${stamp()}`));
  let jobs;
  try {
    jobs = await exportLavaJobs({ ...exportOpts, outDir: sub === 'export' ? base : join(base, 'jobs') });
  } catch (err) {
    if (!(err instanceof LavaRefusal)) throw err;
    if (json) printJson(io, { ok: false, exit_code: EXIT.failed, refused: err.message });
    else io.printErr(`clawos-build: lava ${sub}: ${err.message}\n`);
    return EXIT.failed;
  }
  if (sub === 'export') {
    if (json) printJson(io, { ok: true, jobs });
    else io.print(`${jobs.length} LAVA job(s) in ${base}\n`);
    return EXIT.ok;
  }
  const expected = async (arch: string) => {
    const spec = arches.get(arch)!;
    return loadExpectedChecks(join(io.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch, spec.guest as unknown as Record<string, unknown>);
  };
  const attempts = await runLavaJobs({ jobs, resultsDir: join(base, 'results'), retries: a.retries as number, expectedChecks: expected, log: say });
  const res = await ingestLavaResults({ repoRoot: io.repoRoot, buildDir, dirs: attempts.map((x) => x.dir), iso: a.iso as string | undefined, lab: (a.lab as string | undefined) ?? defaultLab(), arches, generator });
  if (!json) {
    for (const x of attempts) {
      io.print(`${x.arch} ${x.variant} attempt ${x.attempt}: lava-run ${(x.wall_ms / 1000).toFixed(1)} s, boot (QEMU start to the monitor's end) ${x.overhead_ms === null ? '-' : `${((x.wall_ms - x.overhead_ms) / 1000).toFixed(1)} s`}, LAVA overhead ${x.overhead_ms === null ? '-' : `${(x.overhead_ms / 1000).toFixed(1)} s`}\n`);
    }
  }
  return report(res.items, res.run_id, io, json, { attempts, results: join(base, 'results') });
}

function report(items: IngestItem[], runId: string | null, io: CommandIo, json: boolean, extra: Record<string, unknown> = {}): number {
  const last = new Map<string, IngestItem>();
  for (const i of items) last.set(`${i.binding.arch} ${i.binding.variant}`, i);
  const counted = [...last.values()];
  const ok = counted.length > 0 && counted.every((i) => !i.refused && i.judgement.verdict === 'PASS');
  const onlyInfra = counted.length > 0 && counted.every((i) => !i.refused && i.judgement.verdict === 'INFRA_ERROR');
  const code = ok ? EXIT.ok : onlyInfra ? EXIT.infra : EXIT.failed;
  const flakes = flaky(items);
  if (json) {
    printJson(io, { ok, exit_code: code, run_id: runId, flaky: flakes, items, ...extra });
    return code;
  }
  for (const i of items) io.print(`${itemLine(i)}\n`);
  io.print(`flaky: ${flakes.length ? flakes.join('; ') : 'none'}\n`);
  io.print(runId ? `vault: ${items.filter((i) => !i.refused).length} LAVA boot verdict(s) appended as run ${runId}\n` : 'vault: nothing appended\n');
  return code;
}
