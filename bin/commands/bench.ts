/**
 * `clawos-build bench`: G-08's comparison run by hand, outside the phases.
 * ClawOS's kernel and Debian's stock kernel boot with the same initramfs on
 * the same QEMU machine; prints the ratio table per arch (pipeline/bench/stock-bench.ts).
 * By default it uses the kernel and initramfs of the build dir.
 */
import { access, constants, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { run as procRun } from '../../lib/proc.js';
import { selectArches } from '../../pipeline/run/session.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { benchAgainstStock, formatBenchTable, type BenchResult } from '../../pipeline/bench/stock-bench.js';

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

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return benchCommand({ repoRoot: io.repoRoot, buildDir: a.buildDir as string, arch: a.arch as string[], runs: a.runs as number, json: !!a.json, print: io.print, printErr: io.printErr });
}
