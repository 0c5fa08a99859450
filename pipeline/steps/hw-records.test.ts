import { describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fakeStepContext, testArch } from '../../test/helpers/debs-fixtures.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import type { StepContext } from '../catalog/step.js';
import { hwRecordsStep } from './hw-records.js';

const tmp = useTmpDirs();
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function setup(records: Awaited<ReturnType<NonNullable<StepContext['hardwareRecords']>>>) {
  const build = join(await tmp(), 'build');
  await mkdir(join(build, 'build-engineer', 'x86_64'), { recursive: true });
  await mkdir(join(build, 'qa'), { recursive: true });
  await writeFile(join(build, 'build-engineer', 'x86_64', 'clawos-x86_64.iso'), 'iso-x86');
  const trustAsked: string[] = [];
  const ctx: StepContext = {
    ...fakeStepContext({ arch: testArch, repoRoot: process.cwd(), buildDir: build, outDir: join(build, 'qa'), params: { iso: 'build-engineer/{arch}/clawos-{arch}.iso', trust: 'specs/trust/keys.json', report: 'qa/hw-machines.json' }, debs: {} }),
    hardwareRecords: async (t) => {
      trustAsked.push(t);
      return records;
    },
  };
  return { ctx, build, trustAsked };
}

const record = (isoSha: string, verdict = 'PASS') => ({
  iso: { sha256: isoSha, arch: 'x86_64' },
  machine: { vendor: 'ClawOS Test Lab', product: 'Stand-in PC', firmware: 'CL-BIOS-1.0', boot_path: 'BIOS', secure_boot: 'off' },
  verdict,
  message: verdict === 'PASS' ? 'CLAWOS-BOOT-OK, all 14 expected checks passed' : 'CLAWOS-BOOT-FAILED failed=cpu-flags: cpu-flags failed (missing=smep smap)',
  failed_checks: verdict === 'PASS' ? [] : ['cpu-flags'],
  missing_checks: [],
  tester: { name: 'Ada Tester', keyid: 'k' },
  recorded_at: '2026-12-06T08:00:00.000Z',
});

describe('hw-records (G-07)', () => {
  it('NOT_CONFIGURED without a record; the machine list is written; the trust file is the repo one', async () => {
    const { ctx, build, trustAsked } = await setup([]);
    const o = await hwRecordsStep.run(ctx);
    expect(o.status).toBe('NOT_CONFIGURED');
    expect(o.message).toBe(`no signed hardware record for x86_64 (ISO sha256 ${sha('iso-x86').slice(0, 16)}…): flash the ISO (clawos-build flash), boot a real machine from the stick, then clawos-build hw record DEVICE with a trusted tester key`);
    expect(trustAsked).toEqual([join(process.cwd(), 'specs/trust/keys.json')]);
    expect(JSON.parse(await readFile(join(build, 'qa', 'hw-machines.json'), 'utf8'))).toMatchObject({ status: 'NOT_CONFIGURED', machines: [] });
  });

  it('PASS with a counted passing record for the ISO; FAIL naming the machine and check', async () => {
    const s = await setup([{ id: 'r1', counted: true, why: null, record: record(sha('iso-x86')) }]);
    expect(await hwRecordsStep.run(s.ctx)).toMatchObject({ status: 'PASS', message: 'every check passed on real hardware: x86_64: ClawOS Test Lab Stand-in PC (firmware CL-BIOS-1.0, Secure Boot off)' });
    const f = await setup([{ id: 'r1', counted: true, why: null, record: record(sha('iso-x86')) }, { id: 'r2', counted: true, why: null, record: record(sha('iso-x86'), 'FAIL') }]);
    expect(await hwRecordsStep.run(f.ctx)).toMatchObject({
      status: 'FAIL',
      reason: 'boot-check-failed',
      message: 'hardware record(s) failed: x86_64 on ClawOS Test Lab Stand-in PC (firmware CL-BIOS-1.0, Secure Boot off): FAIL, failing check(s) cpu-flags (CLAWOS-BOOT-FAILED failed=cpu-flags: cpu-flags failed (missing=smep smap); recorded by Ada Tester)',
    });
  });

  it('a record for another ISO does not count', async () => {
    const s = await setup([{ id: 'r1', counted: true, why: null, record: record(sha('another iso')) }]);
    const o = await hwRecordsStep.run(s.ctx);
    expect(o.status).toBe('NOT_CONFIGURED');
    expect((o.data as { machines: { not_counted: string }[] }).machines[0]!.not_counted).toBe(`for another ISO (sha256 ${sha('another iso').slice(0, 16)}…), not one being judged`);
  });
});
