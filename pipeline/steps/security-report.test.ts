import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../lib/hash.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { fakeStepContext } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { AUDIT_CRITICAL_REASON } from './kconfig-audit.js';
import { parseSecurityReportParams, securityReportStep } from './security-report.js';

let tmp: DirectoryResult;
let repo: string;
let build: string;

const put = async (path: string, text: string) => {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
};

const boot = (variant: string, checks: [string, string][]) =>
  JSON.stringify({ verdict: checks.every(([, r]) => r === 'pass') ? 'PASS' : 'FAIL', variant, checks: checks.map(([name, result]) => ({ name, result, value: `${name}=${result}` })), missing_checks: [] });

const audit = (waivedCritical: boolean) =>
  JSON.stringify([
    { option_name: 'CONFIG_LSM', type: 'kconfig', desired_val: 'y', decision: 'clawos', reason: 'clawos_layer', check_result: 'OK', check_result_bool: true, severity: 'CRITICAL', waived: false, waiver_reason: null, waiver_who: null, rationale: 'r', fix: 'm', rule: 'rules.yaml:1' },
    { option_name: 'CONFIG_USER_NS', type: 'kconfig', desired_val: 'is not set', decision: 'clipos', reason: 'cut_attack_surface', check_result: 'FAIL: "y"', check_result_bool: false, severity: 'HIGH', waived: waivedCritical, waiver_reason: waivedCritical ? 'the sandbox needs it' : null, waiver_who: waivedCritical ? 'security' : null, rationale: 'r', fix: 'Set CONFIG_USER_NS is not set.', rule: 'rules.yaml:2' },
  ]);

beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
  repo = join(tmp.path, 'repo');
  build = join(tmp.path, 'build');
  const real = repoRootDir();
  await mkdir(join(repo, 'specs/schemas/audit'), { recursive: true });
  await copyFile(join(real, 'specs/schemas/audit/security-layers.schema.json'), join(repo, 'specs/schemas/audit/security-layers.schema.json'));
  await copyFile(join(real, 'specs/schemas/audit/mitigations.schema.json'), join(repo, 'specs/schemas/audit/mitigations.schema.json'));
  await put(join(repo, 'specs/audit/mitigations.yaml'), 'format: clawos-audit-mitigations\nversion: 1.0.0\nmitigations: []\n');
  await put(join(repo, 'specs/arch/x86_64.yaml'), 'name: x86_64\n');
  await put(join(repo, 'specs/arch/aarch64.yaml'), 'name: aarch64\n');
  await put(join(repo, 'tasks/A-01.yaml'), 'task_id: A-01\nper_arch: true\n');
  await put(join(repo, 'tasks/G-03.yaml'), 'task_id: G-03\nper_arch: true\n');
  await put(join(repo, 'tasks/C-01.yaml'), 'task_id: C-01\n');
  await put(join(repo, 'tasks/B-01.yaml'), 'task_id: B-01\n');
  await put(
    join(repo, 'specs/audit/security-layers.yaml'),
    [
      'format: clawos-security-layers',
      'version: 1.0.0',
      'layers:',
      '  - id: kernel',
      '    title: Kernel',
      '    tasks: [A-01, G-03]',
      '    gap: { severity: CRITICAL }',
      '  - id: seccomp',
      '    title: seccomp',
      '    tasks: [C-01]',
      '    gap: { severity: CRITICAL }',
      '  - id: ebpf',
      '    title: eBPF',
      '    tasks: [B-01]',
      '    gap:',
      '      severity: HIGH',
      '      note: no eBPF program runs',
      '      mitigation: { control: seccomp and AppArmor still confine, evidence: [{ check: kernel }, { task: C-01 }] }',
      '',
    ].join('\n'),
  );
  await put(join(repo, 'buildroot-external/board/clawos/checks.yaml'), 'checks:\n  - name: kernel\n    tasks: [A-01]\n  - name: seccomp\n    tasks: [C-01]\n');
  const instances: Record<string, unknown> = {};
  for (const id of ['A-01@x86_64', 'A-01@aarch64', 'G-03@x86_64', 'G-03@aarch64', 'C-01']) {
    instances[id] = { id, task_id: id.split('@')[0], arch: id.split('@')[1] ?? null, status: 'PASS', message: 'ok' };
  }
  instances['B-01'] = { id: 'B-01', task_id: 'B-01', arch: null, status: 'NOT_CONFIGURED', reason: 'not-configured', message: 'component aya-ebpf is not configured' };
  await put(join(build, 'state.json'), JSON.stringify({ format: 'clawos-build-state@1', instances, gates: {} }));
  for (const a of ['x86_64', 'aarch64']) {
    await put(join(build, `build-engineer/${a}/boot/one.json`), boot('one', [['kernel', 'pass'], ['seccomp', 'pass']]));
    await put(join(build, `build-engineer/${a}/boot/not-a-boot.json`), '{"something": "else"}');
    await put(join(build, `qa/${a}/kconfig-audit.json`), audit(true));
  }
});
afterEach(async () => {
  await tmp.cleanup();
});

const params = { boot_dir: 'build-engineer/{arch}/boot', audit: 'qa/{arch}/kconfig-audit.json', audit_layer: 'kernel', report: 'security-report' };
const ctxWith = (p: Record<string, unknown> = params) => fakeStepContext({ repoRoot: repo, buildDir: build, arch: null, params: p, outDir: join(build, 'observability') });

describe('securityReportStep (G-04)', () => {
  it('PASSes with the counts and writes security-report.json and .md, citing every input by sha256', async () => {
    const o = await securityReportStep.run(ctxWith());
    expect(o.status).toBe('PASS');
    expect(o.message).toBe(
      'open findings 0 CRITICAL, 1 HIGH, 0 MEDIUM, 0 LOW; waived 0 CRITICAL, 2 HIGH, 0 MEDIUM, 0 LOW; 3 finding(s) in observability/security-report.md',
    );
    const report = JSON.parse(await readFile(join(build, 'observability/security-report.json'), 'utf8'));
    expect(report.verdict).toBe('PASS');
    expect(report.findings.map((f: { id: string; status: string }) => `${f.id} ${f.status}`)).toEqual([
      'GAP:ebpf:B-01 open',
      'KCONFIG@aarch64:CONFIG_USER_NS waived',
      'KCONFIG@x86_64:CONFIG_USER_NS waived',
    ]);
    const stateSha = sha256Hex(await readFile(join(build, 'state.json')));
    expect(report.inputs).toEqual([
      { label: 'recorded results', path: 'state.json', sha256: stateSha },
      { label: 'boot record aarch64', path: 'build-engineer/aarch64/boot/one.json', sha256: sha256Hex(await readFile(join(build, 'build-engineer/aarch64/boot/one.json'))) },
      { label: 'boot record x86_64', path: 'build-engineer/x86_64/boot/one.json', sha256: sha256Hex(await readFile(join(build, 'build-engineer/x86_64/boot/one.json'))) },
      { label: 'kernel config audit aarch64', path: 'qa/aarch64/kconfig-audit.json', sha256: sha256Hex(await readFile(join(build, 'qa/aarch64/kconfig-audit.json'))) },
      { label: 'kernel config audit x86_64', path: 'qa/x86_64/kconfig-audit.json', sha256: sha256Hex(await readFile(join(build, 'qa/x86_64/kconfig-audit.json'))) },
    ]);
    expect(o.evidence?.slice(0, 2).map((e) => e.path)).toEqual(['observability/security-report.json', 'observability/security-report.md']);
    // The data it judged by, by sha256 (both are in its fingerprint too).
    expect(o.evidence?.slice(-2)).toEqual([
      { label: 'security layers', path: 'specs/audit/security-layers.yaml', sha256: sha256Hex(await readFile(join(repo, 'specs/audit/security-layers.yaml'))) },
      { label: 'audit mitigations', path: 'specs/audit/mitigations.yaml', sha256: sha256Hex(await readFile(join(repo, 'specs/audit/mitigations.yaml'))) },
    ]);
    expect(securityReportStep.implicitInputs!(null, params)).toEqual([
      'specs/audit/security-layers.yaml',
      'specs/schemas/audit/security-layers.schema.json',
      'specs/audit/mitigations.yaml',
      'specs/schemas/audit/mitigations.schema.json',
      'buildroot-external/board/clawos/checks.yaml',
      'specs/arch',
      'tasks',
    ]);
    // The eBPF gap is open but mitigated: its evidence (the kernel check in every boot, C-01's PASS) passed.
    expect(report.findings[0].mitigation_proof).toMatchObject({ proven: true, control: 'seccomp and AppArmor still confine' });
    const md = await readFile(join(build, 'observability/security-report.md'), 'utf8');
    expect(md).toContain('| seccomp | C-01 | seccomp | seccomp | 0 CRITICAL, 0 HIGH, 0 MEDIUM, 0 LOW |');
    // The same inputs give the same bytes: nothing in the report comes from the clock.
    const again = await readFile(join(build, 'observability/security-report.json'), 'utf8');
    await securityReportStep.run(ctxWith());
    expect(await readFile(join(build, 'observability/security-report.json'), 'utf8')).toBe(again);
  });

  it('FAILs on a failed in-guest check (CRITICAL) with the exact message', async () => {
    await put(join(build, 'build-engineer/aarch64/boot/two.json'), boot('two', [['kernel', 'pass'], ['seccomp', 'fail']]));
    const o = await securityReportStep.run(ctxWith());
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe(AUDIT_CRITICAL_REASON);
    expect(o.message).toBe(
      '1 blocking finding (open findings 1 CRITICAL, 1 HIGH, 0 MEDIUM, 0 LOW; waived 0 CRITICAL, 2 HIGH, 0 MEDIUM, 0 LOW):\n' +
        'GUEST:aarch64/two:seccomp: CRITICAL: in-guest check seccomp fail on aarch64 (two)',
    );
    // The report is still written, so the failure can be read.
    expect(JSON.parse(await readFile(join(build, 'observability/security-report.json'), 'utf8')).verdict).toBe('FAIL');
  });

  it('FAILs on an open HIGH audit entry that has only a fix; a mitigation whose evidence passed in this run lifts it', async () => {
    await put(join(build, 'qa/x86_64/kconfig-audit.json'), audit(false));
    const o = await securityReportStep.run(ctxWith());
    expect(o.status).toBe('FAIL');
    expect(o.message.split('\n').slice(1)).toEqual(['KCONFIG@x86_64:CONFIG_USER_NS: HIGH without a proven mitigation: CONFIG_USER_NS is not set (clipos): FAIL: "y"']);
    const mitigation = (check: string) =>
      `format: clawos-audit-mitigations\nversion: 1.0.0\nmitigations:\n  - option: CONFIG_USER_NS\n    control: the sandbox maps to nobody\n    evidence: [{ check: ${check} }]\n    who: security\n`;
    // Its evidence must pass in every boot of every arch.
    await put(join(build, 'build-engineer/aarch64/boot/two.json'), boot('two', [['kernel', 'fail'], ['seccomp', 'pass']]));
    await put(join(repo, 'specs/audit/mitigations.yaml'), mitigation('kernel'));
    const still = await securityReportStep.run(ctxWith());
    expect(still.message.split('\n').slice(1)).toContain(
      "KCONFIG@x86_64:CONFIG_USER_NS: HIGH without a proven mitigation: CONFIG_USER_NS is not set (clipos): FAIL: \"y\"; its mitigation's evidence did not pass: check kernel (aarch64 two: fail)",
    );
    await put(join(repo, 'specs/audit/mitigations.yaml'), mitigation('seccomp'));
    const ok = await securityReportStep.run(ctxWith());
    // (the failed kernel check itself is CRITICAL, and the eBPF gap's evidence fails with it)
    expect(ok.message.split('\n').slice(1).filter((l) => l.includes('CONFIG_USER_NS'))).toEqual([]);
    const report = JSON.parse(await readFile(join(build, 'observability/security-report.json'), 'utf8'));
    expect(report.findings.find((f: { id: string }) => f.id === 'KCONFIG@x86_64:CONFIG_USER_NS')).toMatchObject({
      fix: 'Set CONFIG_USER_NS is not set.',
      mitigation: 'the sandbox maps to nobody',
      mitigation_proof: { proven: true, who: 'security', at: 'specs/audit/mitigations.yaml:4', evidence: [{ kind: 'check', name: 'seccomp', passed: true, detail: 'passed in all 3 boots (aarch64, x86_64)' }] },
    });
    // A mitigations file that is not valid is refused at its line.
    await put(join(repo, 'specs/audit/mitigations.yaml'), 'format: clawos-audit-mitigations\nversion: 1.0.0\nmitigations:\n  - option: CONFIG_USER_NS\n    control: text only\n    who: security\n');
    expect(await securityReportStep.run(ctxWith())).toMatchObject({
      status: 'FAIL',
      reason: 'spec-invalid',
      message: '1 problem in specs/audit/mitigations.yaml:\nspecs/audit/mitigations.yaml:4:5: missing required field "evidence" in mitigations.0',
    });
  });

  it('refuses bad parameters, an unknown audit layer and a missing state', async () => {
    expect(parseSecurityReportParams({ ...params, boot_dir: 'build-engineer/x86_64/boot' })).toBe("security-report: 'boot_dir' must be a build-relative path with {arch}");
    expect(parseSecurityReportParams({ ...params, extra: 1 })).toBe("security-report: unknown parameter 'extra' (known: boot_dir, audit, audit_layer, report, layers, mitigations, checks)");
    expect(await securityReportStep.run(ctxWith({ ...params, audit_layer: 'audit' }))).toMatchObject({
      status: 'FAIL',
      reason: 'spec-invalid',
      message: "security-report: audit_layer 'audit' is not a layer of specs/audit/security-layers.yaml (kernel, seccomp, ebpf)",
    });
    await rm(join(build, 'state.json'));
    expect(await securityReportStep.run(ctxWith())).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'security-report: state.json is missing: nothing was recorded yet' });
    await writeFile(join(repo, 'specs/audit/security-layers.yaml'), 'format: clawos-security-layers\nversion: 1.0.0\nlayers:\n  - id: kernel\n    title: K\n    tasks: [A-01]\n');
    const bad = await securityReportStep.run(ctxWith());
    expect(bad).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: '1 problem in specs/audit/security-layers.yaml:\nspecs/audit/security-layers.yaml:4:5: missing required field "gap" in layers.0' });
  });
});
