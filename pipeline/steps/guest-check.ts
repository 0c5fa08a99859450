/**
 * guest-check: a catalog task that is proven inside the booted guest (user
 * namespaces, lockdown …) passes only when every recorded boot of the ISO
 * reported each of its checks as passing. The evidence is the boot records.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import { fail, pass, type Evidence } from '../catalog/outcome.js';
import type { Step } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';

interface BootRecordLike {
  variant?: string;
  verdict?: string;
  checks?: { name: string; result: string; value?: string }[];
}

export const guestCheckStep: Step = {
  name: 'guest-check',
  version: 1,
  // With no checks named, the task would PASS having checked nothing (issue 11): at least one is required.
  params: paramsSchema({ boot_dir: P.path, checks: { ...P.paths, minItems: 1 }, report: P.path }, ['boot_dir', 'checks']),
  toolPackages: () => [],
  async run(ctx) {
    const bootDir = ctx.buildPath(String(ctx.params.boot_dir));
    const wanted = (ctx.params.checks as string[] | undefined) ?? [];
    const reportName = String(ctx.params.report ?? `${ctx.taskId}-guest-checks.json`);
    let files: string[];
    try {
      files = (await readdir(bootDir)).filter((f) => f.endsWith('.json')).sort();
    } catch {
      return fail('output-missing', `no boot records in ${relative(ctx.buildDir, bootDir)}: the ISO was not booted`);
    }
    const evidence: Evidence[] = [];
    const rows: { variant: string; check: string; result: string; value: string }[] = [];
    const problems: string[] = [];
    for (const f of files) {
      const abs = join(bootDir, f);
      let rec: BootRecordLike;
      const rel = relative(ctx.buildDir, abs);
      // A record that cannot be read is a failure, never skipped: it may be the boot that went wrong.
      try {
        rec = JSON.parse(await readFile(abs, 'utf8')) as BootRecordLike;
      } catch (err) {
        problems.push(`${rel}: not a boot record (${(err as Error).message.split('\n')[0]})`);
        continue;
      }
      if (!rec || typeof rec.verdict !== 'string' || typeof rec.variant !== 'string') {
        problems.push(`${rel}: not a boot record (no verdict and variant)`);
        continue;
      }
      evidence.push({ label: `boot ${rec.variant}`, path: rel, sha256: await sha256File(abs) });
      // The boot's own verdict counts: checks read from a boot that failed prove nothing.
      if (rec.verdict !== 'PASS') problems.push(`${rec.variant}: the boot's verdict is ${rec.verdict}`);
      for (const name of wanted) {
        const c = rec.checks?.find((x) => x.name === name);
        const result = c?.result ?? 'missing';
        rows.push({ variant: rec.variant, check: name, result, value: c?.value ?? '' });
        if (result !== 'pass') problems.push(`${rec.variant}: check ${name} ${result}${c?.value ? ` (${c.value})` : ''}`);
      }
    }
    if (!evidence.length && !problems.length) return fail('output-missing', `no boot records in ${relative(ctx.buildDir, bootDir)}: the ISO was not booted`);
    const report = join(ctx.outDir, reportName);
    await writeJsonAtomic(report, { task: ctx.instanceId, checks: wanted, results: rows, boots: evidence });
    evidence.push({ label: 'report', path: relative(ctx.buildDir, report), sha256: await sha256File(report) });
    if (problems.length) return fail('boot-check-failed', problems.join('; '), { evidence, data: rows });
    return pass(`${wanted.join(', ')} passed in ${evidence.length - 1} boot(s)`, { evidence, data: rows });
  },
};
