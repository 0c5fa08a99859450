import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { fakeStepContext, testArch } from '../../test/helpers/debs-fixtures.js';
import { guestCheckStep } from './guest-check.js';

let tmp: DirectoryResult;
let build: string;
const boot = () => join(build, 'be', 'boot');
const rec = (variant: string, verdict: string, checks: { name: string; result: string; value?: string }[]) => JSON.stringify({ variant, verdict, checks });
const run = () =>
  guestCheckStep.run(fakeStepContext({ arch: testArch, repoRoot: tmp.path, buildDir: build, outDir: join(build, 'sec'), params: { boot_dir: 'be/boot', checks: ['lsm'] }, debs: {} }));

beforeEach(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
  build = join(tmp.path, 'build');
  await mkdir(boot(), { recursive: true });
  await mkdir(join(build, 'sec'), { recursive: true });
});
afterEach(() => tmp.cleanup());

describe('guest-check', () => {
  it('passes when every boot PASSed and reported the check passed', async () => {
    await writeFile(join(boot(), 'a.json'), rec('a', 'PASS', [{ name: 'lsm', result: 'pass', value: 'apparmor' }]));
    expect(await run()).toMatchObject({ status: 'PASS', message: 'lsm passed in 1 boot(s)' });
  });

  it('a boot record it cannot parse fails the task instead of being skipped (issue 11)', async () => {
    await writeFile(join(boot(), 'a.json'), rec('a', 'PASS', [{ name: 'lsm', result: 'pass' }]));
    await writeFile(join(boot(), 'b.json'), '{"variant": "b", "verdict": "PA');
    const o = await run();
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe('boot-check-failed');
    expect(o.message).toMatch(/^be\/boot\/b\.json: not a boot record \(/);
  });

  it("a boot whose own verdict is not PASS fails the check, whatever its check lines said (issue 11)", async () => {
    await writeFile(join(boot(), 'a.json'), rec('a', 'FAIL', [{ name: 'lsm', result: 'pass' }]));
    expect(await run()).toMatchObject({ status: 'FAIL', reason: 'boot-check-failed', message: "a: the boot's verdict is FAIL" });
  });
});
