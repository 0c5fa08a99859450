import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hash.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { fakeStepContext, fakeX86Arch } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { AUDIT_CRITICAL_REASON, kconfigAuditStep, parseKconfigAuditParams } from './kconfig-audit.js';

const repo = repoRootDir();
const MAGIC = '~Module signature appended~\n';
let tmp: DirectoryResult;
let build: string;

beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
  build = join(tmp.path, 'build');
  const k = join(build, 'kernel-engineer/x86_64');
  await mkdir(join(k, 'modules'), { recursive: true });
  await mkdir(join(k, 'obj/fs/efivarfs'), { recursive: true });
  await copyFile(join(repo, 'test/fixtures/kconfig/x86_64-6.1.192-clawos.config'), join(k, 'config'));
  const body = Buffer.from('\x7fELF canary\n');
  await writeFile(join(k, 'modules/clawos_canary.ko'), Buffer.concat([body, Buffer.from('sig'), Buffer.from(MAGIC)]));
  await writeFile(join(k, 'modules/clawos_canary-unsigned.ko'), body);
  await writeFile(join(k, 'obj/fs/efivarfs/efivarfs.ko'), body);
  await writeFile(join(k, 'obj/modules.order'), 'fs/efivarfs/efivarfs.ko\n');
});
afterEach(async () => {
  await tmp.cleanup();
});

const params = (extra: Record<string, unknown> = {}) => ({
  config: 'kernel-engineer/x86_64/config',
  modules: ['kernel-engineer/x86_64/modules'],
  report: 'kconfig-audit',
  ...extra,
});
const ctxWith = (p: Record<string, unknown>, repoRoot = repo) =>
  fakeStepContext({ repoRoot, buildDir: build, arch: fakeX86Arch, params: p, outDir: join(build, 'qa/x86_64') });

const KHC_KEYS = ['option_name', 'type', 'desired_val', 'decision', 'reason', 'check_result', 'check_result_bool'];
const OUR_KEYS = ['severity', 'waived', 'waiver_reason', 'waiver_who', 'rationale', 'fix', 'rule'];

describe('kconfigAuditStep (G-03)', () => {
  it('PASSes on the recorded x86_64 .config with the counts; writes kernel-hardening-checker-shaped JSON and a summary', async () => {
    const ctx = ctxWith(params());
    const o = await kconfigAuditStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(o.message).toBe(
      'x86_64: 143 checks: 81 OK, 53 failed (0 CRITICAL, 7 HIGH, 24 MEDIUM, 22 LOW), 9 waived; no non-waived CRITICAL (qa/x86_64/kconfig-audit.md)',
    );
    const entries = JSON.parse(await readFile(join(build, 'qa/x86_64/kconfig-audit.json'), 'utf8')) as Record<string, unknown>[];
    expect(Array.isArray(entries)).toBe(true);
    expect(entries).toHaveLength(143);
    for (const e of entries) {
      const keys = Object.keys(e);
      expect(keys.slice(0, KHC_KEYS.length)).toEqual(KHC_KEYS);
      expect(keys.slice(KHC_KEYS.length, KHC_KEYS.length + OUR_KEYS.length)).toEqual(OUR_KEYS);
      expect(typeof e['check_result_bool']).toBe('boolean');
      expect(e['check_result_bool']).toBe(String(e['check_result']).startsWith('OK'));
    }
    expect(entries[0]).toEqual({
      option_name: 'CONFIG_LSM',
      type: 'kconfig',
      desired_val: '"lockdown,yama,apparmor,bpf"',
      decision: 'clawos',
      reason: 'clawos_layer',
      check_result: 'OK',
      check_result_bool: true,
      severity: 'CRITICAL',
      waived: false,
      waiver_reason: null,
      waiver_who: null,
      rationale: 'The LSM stack and its order are the ClawOS policy layer; another order or a missing LSM changes which policy decides.',
      fix: 'Set CONFIG_LSM="lockdown,yama,apparmor,bpf" in kernel-config/common.config.',
      rule: 'specs/audit/kconfig-rules.yaml:39',
    });
    const mods = entries.filter((e) => e['type'] === 'module_signature').map((e) => [e['option_name'], e['check_result'], e['waived']]);
    expect(mods).toEqual([
      ['kernel-engineer/x86_64/modules/clawos_canary-unsigned.ko', 'FAIL: no module signature', true],
      ['kernel-engineer/x86_64/modules/clawos_canary.ko', 'OK', false],
    ]);
    const md = await readFile(join(build, 'qa/x86_64/kconfig-audit.md'), 'utf8');
    expect(md.split('\n').slice(0, 3)).toEqual(['# Kernel config audit: x86_64', '', '**PASS**: 143 checks: 81 OK, 53 failed (0 CRITICAL, 7 HIGH, 24 MEDIUM, 22 LOW), 9 waived.']);
    expect(md).toContain('| `CONFIG_VMAP_STACK` | y | FAIL: "is not set" | defconfig | no | Set CONFIG_VMAP_STACK=y (tinyconfig turns it off). |');
    expect(o.evidence?.map((e) => e.path)).toEqual([
      'kernel-engineer/x86_64/config',
      'specs/audit/kconfig-rules.yaml',
      'specs/audit/waivers.yaml',
      'qa/x86_64/kconfig-audit.json',
      'qa/x86_64/kconfig-audit.md',
    ]);
    expect(o.evidence?.[0]?.sha256).toBe('0c83fceff7f1978b4a4295ce6046b2d83cc7f3446a2883b65d4720e2e0af0635');
  });

  it('FAILs on an unsigned in-tree module that Kbuild built (modules.order), naming the file and the rule', async () => {
    const o = await kconfigAuditStep.run(ctxWith(params({ modules_order: ['kernel-engineer/x86_64/obj/modules.order'] })));
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe(AUDIT_CRITICAL_REASON);
    expect(o.message).toBe(
      '1 non-waived CRITICAL failure in the kernel config audit for x86_64 (144 checks: 81 OK, 54 failed (1 CRITICAL, 7 HIGH, 24 MEDIUM, 22 LOW), 9 waived):\n' +
        'kernel-engineer/x86_64/obj/fs/efivarfs/efivarfs.ko: desired "~Module signature appended~", FAIL: no module signature (specs/audit/kconfig-rules.yaml:1331)',
    );
    // The audit is written on FAIL too, so the report can cite it.
    expect(await sha256File(join(build, 'qa/x86_64/kconfig-audit.json'))).toMatch(/^[0-9a-f]{64}$/);
  });

  it('FAILs on a non-waived CRITICAL option with the exact message', async () => {
    const cfg = join(build, 'kernel-engineer/x86_64/config');
    const text = await readFile(cfg, 'utf8');
    await writeFile(
      cfg,
      text
        .replace('CONFIG_MODULE_SIG_FORCE=y', '# CONFIG_MODULE_SIG_FORCE is not set')
        .replace('CONFIG_LSM="lockdown,yama,apparmor,bpf"', 'CONFIG_LSM="lockdown,yama,bpf,apparmor"'),
    );
    const o = await kconfigAuditStep.run(ctxWith(params()));
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe(AUDIT_CRITICAL_REASON);
    expect(o.message).toBe(
      '2 non-waived CRITICAL failures in the kernel config audit for x86_64 (143 checks: 79 OK, 55 failed (2 CRITICAL, 7 HIGH, 24 MEDIUM, 22 LOW), 9 waived):\n' +
        'CONFIG_LSM: desired "lockdown,yama,apparmor,bpf", FAIL: ""lockdown,yama,bpf,apparmor"" (specs/audit/kconfig-rules.yaml:39)\n' +
        'CONFIG_MODULE_SIG_FORCE: desired y, FAIL: "is not set" (specs/audit/kconfig-rules.yaml:103)',
    );
    expect(o.data).toMatchObject({ failed: { CRITICAL: 2, HIGH: 7, MEDIUM: 24, LOW: 22 }, waived: 9 });
  });

  it('FAILs spec-invalid on a waiver without a reason, naming file:line and the entry', async () => {
    const r = join(tmp.path, 'repo');
    await mkdir(join(r, 'specs/audit'), { recursive: true });
    await mkdir(join(r, 'specs/schemas/audit'), { recursive: true });
    await mkdir(join(r, 'specs/arch'), { recursive: true });
    for (const f of ['specs/audit/kconfig-rules.yaml', 'specs/schemas/audit/kconfig-rules.schema.json', 'specs/schemas/audit/waivers.schema.json', 'specs/arch/x86_64.yaml', 'specs/arch/aarch64.yaml']) {
      await copyFile(join(repo, f), join(r, f));
    }
    await writeFile(
      join(r, 'specs/audit/waivers.yaml'),
      'format: clawos-audit-waivers\nversion: 1.0.0\nwaivers:\n  - option: CONFIG_BPF_SYSCALL\n    desired: is not set\n    reason: needed by the eBPF layer\n    who: security\n  - option: CONFIG_USER_NS\n    desired: is not set\n    who: security\n',
    );
    const o = await kconfigAuditStep.run(ctxWith(params(), r));
    expect(o).toMatchObject({
      status: 'FAIL',
      reason: 'spec-invalid',
      message: '1 problem in the audit data:\nspecs/audit/waivers.yaml:8:5: waivers.1 (CONFIG_USER_NS is not set): a waiver needs a written reason',
      location: { file: 'specs/audit/waivers.yaml', line: 8, col: 5 },
    });
  });

  it('refuses bad parameters and a missing config', async () => {
    expect(parseKconfigAuditParams({ config: 'c', bogus: 1 })).toBe("kconfig-audit: unknown parameter 'bogus' (known: config, modules, modules_order, report, rules, waivers)");
    expect(parseKconfigAuditParams({ config: 'c', modules: 'kernel-engineer/x86_64/modules' })).toBe("kconfig-audit: 'modules' must be a list of build-relative paths");
    expect(parseKconfigAuditParams({ config: 'c', rules: '../x.yaml' })).toBe("kconfig-audit: 'rules' must be a repo-relative path");
    const o = await kconfigAuditStep.run(ctxWith(params({ config: 'kernel-engineer/aarch64/config' })));
    expect(o).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'kconfig-audit: kernel-engineer/aarch64/config does not exist (was the kernel built?)' });
  });

  it('fingerprints the audit data it reads', () => {
    expect(kconfigAuditStep.implicitInputs!(fakeX86Arch, {})).toEqual([
      'specs/audit/kconfig-rules.yaml',
      'specs/audit/waivers.yaml',
      'specs/schemas/audit/kconfig-rules.schema.json',
      'specs/schemas/audit/waivers.schema.json',
    ]);
  });
});
