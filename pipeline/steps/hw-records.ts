/**
 * hw-records: G-07 (issue 15). Judges the signed hardware records of the vault
 * (`clawos-build hw record`) against this build's ISOs with G-07's rule
 * (pipeline/boot/hw-verdict.ts) and writes the machine list. The records are
 * read and their signatures checked by the run (ctx.hardwareRecords: steps do
 * not read the vault), against the trust file named in `with: trust`.
 *
 *   with:
 *     iso: build-engineer/{arch}/clawos-{arch}.iso   # {arch}: every arch of specs/arch/ whose ISO exists
 *     trust: specs/trust/keys.json                     # repo-relative: who is a trusted tester
 *     report: qa/hw-machines.json
 */
import { stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import { loadArches } from '../catalog/arch.js';
import { fail, pass, type Outcome } from '../catalog/outcome.js';
import type { Step } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import { judgeHardware, type HwRecordView } from '../boot/hw-verdict.js';

export const HW_RECORDS_DIR = 'vault/hw';

export const hwRecordsStep: Step = {
  name: 'hw-records',
  version: 1,
  params: paramsSchema({ iso: P.path, trust: P.path, report: P.path }, ['iso', 'trust', 'report']),
  toolPackages: () => [],
  implicitInputs: (_arch, params) => (typeof params.trust === 'string' ? [params.trust] : []),
  // A new record (or a changed one) must re-judge G-07: the records are part of its fingerprint.
  buildInputs: () => [HW_RECORDS_DIR],
  async run(ctx) {
    const isoTemplate = String(ctx.params.iso);
    const isos: { arch: string; sha256: string; path: string }[] = [];
    for (const arch of (await loadArches(ctx.repoRoot)).keys()) {
      const rel = isoTemplate.replaceAll('{arch}', arch);
      const abs = ctx.buildPath(rel);
      if (!(await stat(abs).catch(() => null))?.isFile()) continue;
      isos.push({ arch, sha256: await sha256File(abs), path: rel });
    }
    if (!isos.length) return fail('output-missing', `no ISO to judge: ${isoTemplate} exists for no arch (G-05 built none)`);
    if (!ctx.hardwareRecords) return fail('spec-invalid', 'hw-records: this run cannot read the vault\'s hardware records');
    const views: HwRecordView[] = await ctx.hardwareRecords(join(ctx.repoRoot, String(ctx.params.trust)));
    const j = judgeHardware(views, isos);
    const report = ctx.buildPath(String(ctx.params.report));
    await writeJsonAtomic(report, { task: ctx.instanceId, status: j.status, message: j.message, isos, machines: j.rows });
    const evidence = [
      ...isos.map((i) => ({ label: `ISO ${i.arch}`, path: i.path, sha256: i.sha256 })),
      { label: 'machine list', path: relative(ctx.buildDir, report), sha256: await sha256File(report) },
    ];
    for (const r of j.rows) ctx.log(`hw-records: ${r.record.slice(0, 16)} ${r.arch} ${r.vendor} ${r.product}: ${r.verdict}${r.not_counted ? ` (not counted: ${r.not_counted})` : ''}`);
    const data = { machines: j.rows };
    if (j.status === 'PASS') return pass(j.message, { evidence, data });
    if (j.status === 'FAIL') return fail('boot-check-failed', j.message, { evidence, data });
    const nc: Outcome = { status: 'NOT_CONFIGURED', reason: 'not-configured', message: j.message, evidence, data };
    return nc;
  },
};
