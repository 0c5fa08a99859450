import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRootDir } from '../../lib/repo-root.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import type { AuditEntry } from './kconfig-audit.js';
import { computeSecurityReport, LAYERS_FILE, LAYERS_SCHEMA, MITIGATIONS_FILE, parseSecurityLayers, securityLayersDiagnostics, securityReportMarkdown, type Layer, type ReportInputs } from './security-report.js';
import { realInputs, recordedConfig, todayConfig } from '../../test/helpers/security-inputs.js';

const repo = repoRootDir();
const STATE = { path: 'state.json', sha256: 'a'.repeat(64) };

const EBPF_GAP = {
  severity: 'HIGH' as const,
  note: 'no eBPF program runs',
  mitigation: { control: 'other layers confine', evidence: [{ check: 'seccomp' }, { task: 'C-01' }] },
};

const layers: Layer[] = [
  { id: 'kernel', title: 'Kernel', tasks: [{ id: 'A-01', gap: { severity: 'CRITICAL' } }, { id: 'G-03', gap: { severity: 'CRITICAL' } }] },
  {
    id: 'seccomp',
    title: 'seccomp',
    tasks: [
      { id: 'C-01', gap: { severity: 'CRITICAL' } },
      { id: 'C-08', gap: { severity: 'CRITICAL' } },
      { id: 'C-02', gap: { severity: 'MEDIUM', note: 'the whitelist is enforced as written' } },
    ],
  },
  { id: 'ebpf', title: 'eBPF', tasks: [{ id: 'B-01', gap: EBPF_GAP }, { id: 'B-02', gap: EBPF_GAP }] },
  { id: 'apparmor', title: 'AppArmor', tasks: [{ id: 'F-02', gap: { severity: 'HIGH' } }, { id: 'F-06', gap: { severity: 'CRITICAL' } }] },
];

const catalog = new Map([
  ['A-01', { per_arch: true, optional: false }],
  ['G-03', { per_arch: true, optional: false }],
  ['C-01', { per_arch: false, optional: false }],
  ['C-08', { per_arch: true, optional: false }],
  ['C-02', { per_arch: false, optional: false }],
  ['B-01', { per_arch: false, optional: false }],
  ['B-02', { per_arch: false, optional: false }],
  ['F-02', { per_arch: false, optional: false }],
]);

const rec = (id: string, status: string, extra: Record<string, unknown> = {}) => ({
  id,
  task_id: id.split('@')[0]!,
  arch: id.includes('@') ? id.split('@')[1]! : null,
  status,
  message: `${id} ${status.toLowerCase()}`,
  ...extra,
});

const auditEntry = (option: string, check_result: string, severity: AuditEntry['severity'], waived = false): AuditEntry => ({
  option_name: option,
  type: 'kconfig',
  desired_val: 'y',
  decision: 'kspp',
  reason: 'self_protection',
  check_result,
  check_result_bool: check_result.startsWith('OK'),
  severity,
  waived,
  waiver_reason: waived ? 'needed by ClawOS' : null,
  waiver_who: waived ? 'security' : null,
  rationale: `${option} matters`,
  fix: `set ${option}`,
  rule: 'specs/audit/kconfig-rules.yaml:1',
});

function inputs(): ReportInputs {
  return {
    layers,
    catalog,
    arches: ['aarch64', 'x86_64'],
    records: {
      'A-01@aarch64': rec('A-01@aarch64', 'PASS'),
      'A-01@x86_64': rec('A-01@x86_64', 'PASS', { evidence: [{ label: 'config', path: 'kernel-engineer/x86_64/config', sha256: 'c'.repeat(64) }] }),
      'G-03@aarch64': rec('G-03@aarch64', 'PASS'),
      'G-03@x86_64': rec('G-03@x86_64', 'PASS'),
      'C-01': rec('C-01', 'PASS'),
      'C-08@x86_64': rec('C-08@x86_64', 'PASS'),
      'C-08@aarch64': rec('C-08@aarch64', 'FAIL', { reason: 'exit-non-zero', message: 'open: not a syscall on aarch64' }),
      'C-02': rec('C-02', 'NOT_CONFIGURED', { reason: 'not-configured', message: 'component ironclaw is not configured' }),
      'B-01': rec('B-01', 'NOT_CONFIGURED', { reason: 'not-configured', message: 'component aya-ebpf is not configured' }),
      'B-02': rec('B-02', 'NOT_CONFIGURED', {
        reason: 'not-configured',
        message: 'not run: needs B-01',
        data: { not_configured_root: { id: 'B-01', message: 'component aya-ebpf is not configured' } },
      }),
      // F-02: no record at all.
    },
    state: STATE,
    boots: [
      { arch: 'aarch64', dir: 'build-engineer/aarch64/boot', records: [] },
      {
        arch: 'x86_64',
        dir: 'build-engineer/x86_64/boot',
        records: [
          {
            path: 'build-engineer/x86_64/boot/ovmf.json',
            sha256: 'b'.repeat(64),
            boot: { variant: 'ovmf', verdict: 'PASS', checks: [{ name: 'kernel', result: 'pass' }, { name: 'seccomp', result: 'pass' }, { name: 'lockdown', result: 'pass' }] },
          },
          {
            path: 'build-engineer/x86_64/boot/seabios.json',
            sha256: 'd'.repeat(64),
            boot: {
              variant: 'seabios',
              verdict: 'FAIL',
              checks: [{ name: 'kernel', result: 'pass' }, { name: 'lockdown', result: 'fail', value: 'none integrity [confidentiality]? no: [none]' }],
              missing_checks: ['seccomp'],
            },
          },
        ],
      },
    ],
    checkTasks: new Map([
      ['kernel', ['A-01']],
      ['seccomp', ['C-01', 'C-08']],
      ['lockdown', ['A-06', 'F-05']],
    ]),
    audits: [
      { arch: 'aarch64', path: 'qa/aarch64/kconfig-audit.json', sha256: null, entries: null, error: 'qa/aarch64/kconfig-audit.json is missing: G-03 did not audit aarch64' },
      {
        arch: 'x86_64',
        path: 'qa/x86_64/kconfig-audit.json',
        sha256: 'e'.repeat(64),
        entries: [
          auditEntry('CONFIG_LSM', 'OK', 'CRITICAL'),
          auditEntry('CONFIG_VMAP_STACK', 'FAIL: "is not set"', 'HIGH'),
          auditEntry('CONFIG_USER_NS', 'FAIL: "y"', 'CRITICAL', true),
          auditEntry('CONFIG_KALLSYMS', 'FAIL: "y"', 'LOW', true),
        ],
      },
    ],
    auditLayer: 'kernel',
  };
}

describe('computeSecurityReport', () => {
  it('a BUILT task (built, nothing proves it works) is filed as "built, not validated", apart from the tasks not built (issue 11)', () => {
    const inp = inputs();
    inp.records = {
      ...inp.records,
      'B-01': rec('B-01', 'BUILT', { reason: 'unvalidated', message: 'component aya-ebpf built; no validation_cmd or in-guest check proves it' }),
      'B-02': rec('B-02', 'NOT_CONFIGURED', { reason: 'not-configured', message: 'component aya-ebpf-tracepoints is not configured' }),
    };
    const byId = new Map(computeSecurityReport(inp).findings.map((f) => [f.id, f]));
    expect(byId.get('GAP:ebpf:B-01')).toMatchObject({
      severity: 'HIGH',
      status: 'open',
      title: 'built, not validated: B-01',
      detail: 'component aya-ebpf built; no validation_cmd or in-guest check proves it',
      rests_on: 'the recorded results of B-01 in state.json (BUILT: built, but no validation_cmd or in-guest check proves it works)',
    });
    expect(byId.get('GAP:ebpf:B-02')).toMatchObject({
      title: 'not built: B-02',
      detail: 'component aya-ebpf-tracepoints is not configured',
      rests_on: 'the recorded results of B-02 in state.json (NOT_CONFIGURED or absent)',
    });
  });

  it('collects every finding from the recorded results, with severity, status, evidence, fix and mitigation', () => {
    const r = computeSecurityReport(inputs());
    expect(r.findings.map((f) => [f.id, f.layer, f.severity, f.status, f.fix, f.mitigation])).toEqual([
      ['AUDIT:aarch64', 'kernel', 'CRITICAL', 'open', null, null],
      ['GUEST:x86_64/seabios:seccomp', 'seccomp', 'CRITICAL', 'open', null, null],
      ['TASK:C-08@aarch64', 'seccomp', 'CRITICAL', 'open', null, null],
      ['GUEST:aarch64', 'unclassified', 'CRITICAL', 'open', null, null],
      ['GUEST:x86_64/seabios:lockdown', 'unclassified', 'CRITICAL', 'open', null, null],
      ['KCONFIG@x86_64:CONFIG_USER_NS', 'kernel', 'CRITICAL', 'waived', 'set CONFIG_USER_NS', null],
      ['KCONFIG@x86_64:CONFIG_VMAP_STACK', 'kernel', 'HIGH', 'open', 'set CONFIG_VMAP_STACK', null],
      // Declared, but its evidence did not pass in this run: no mitigation.
      ['GAP:ebpf:B-01', 'ebpf', 'HIGH', 'open', 'no eBPF program runs', null],
      ['GAP:apparmor:F-02', 'apparmor', 'HIGH', 'open', null, null],
      ['GAP:seccomp:C-02', 'seccomp', 'MEDIUM', 'open', 'the whitelist is enforced as written', null],
      ['KCONFIG@x86_64:CONFIG_KALLSYMS', 'kernel', 'LOW', 'waived', 'set CONFIG_KALLSYMS', null],
    ]);
    const byId = new Map(r.findings.map((f) => [f.id, f]));
    // NOT_CONFIGURED dependants are one finding with their root cause.
    expect(byId.get('GAP:ebpf:B-01')).toMatchObject({ title: 'not built: B-01, B-02', detail: 'B-01: component aya-ebpf is not configured' });
    expect(byId.get('GAP:ebpf:B-01')?.mitigation_proof).toEqual({
      control: 'other layers confine',
      proven: false,
      evidence: [
        { kind: 'check', name: 'seccomp', passed: false, detail: 'aarch64: no boot records; x86_64 seabios: not reported' },
        { kind: 'task', name: 'C-01', passed: true, detail: 'C-01 PASS' },
      ],
    });
    expect(byId.get('GAP:apparmor:F-02')).toMatchObject({ title: 'not built: F-02', detail: 'no recorded result (not run)' });
    expect(byId.get('TASK:C-08@aarch64')).toMatchObject({
      title: 'C-08@aarch64 FAIL (exit-non-zero)',
      detail: 'open: not a syscall on aarch64',
      rests_on: 'the recorded result of C-08@aarch64 in state.json',
      evidence: [{ label: 'recorded result of C-08@aarch64', path: 'state.json', sha256: STATE.sha256 }],
    });
    expect(byId.get('GUEST:x86_64/seabios:lockdown')).toMatchObject({
      title: 'in-guest check lockdown fail on x86_64 (seabios)',
      detail: 'lockdown: none integrity [confidentiality]? no: [none]',
      rests_on: 'the boot record build-engineer/x86_64/boot/seabios.json (in-guest check lockdown)',
      evidence: [{ label: 'boot x86_64 seabios', path: 'build-engineer/x86_64/boot/seabios.json', sha256: 'd'.repeat(64) }],
    });
    expect(byId.get('GUEST:x86_64/seabios:seccomp')?.title).toBe('in-guest check seccomp missing on x86_64 (seabios)');
    expect(byId.get('KCONFIG@x86_64:CONFIG_USER_NS')).toMatchObject({
      title: 'CONFIG_USER_NS=y (kspp): FAIL: "y"',
      detail: 'CONFIG_USER_NS matters',
      waiver: { reason: 'needed by ClawOS', who: 'security' },
      evidence: [{ label: 'kernel config audit x86_64', path: 'qa/x86_64/kconfig-audit.json', sha256: 'e'.repeat(64) }],
      rests_on: 'the G-03 audit entry for CONFIG_USER_NS in qa/x86_64/kconfig-audit.json (rule specs/audit/kconfig-rules.yaml:1)',
    });
    expect(r.summary).toEqual({
      findings: 11,
      open: { CRITICAL: 5, HIGH: 3, MEDIUM: 1, LOW: 0 },
      waived: { CRITICAL: 1, HIGH: 0, MEDIUM: 0, LOW: 1 },
    });
  });

  it('FAILs on every open CRITICAL and on an open HIGH without a mitigation; a waived CRITICAL does not block', () => {
    const r = computeSecurityReport(inputs());
    expect(r.verdict).toBe('FAIL');
    expect(r.blocking).toEqual([
      'AUDIT:aarch64: CRITICAL: aarch64: no kernel config audit',
      'GUEST:x86_64/seabios:seccomp: CRITICAL: in-guest check seccomp missing on x86_64 (seabios)',
      'TASK:C-08@aarch64: CRITICAL: C-08@aarch64 FAIL (exit-non-zero)',
      'GUEST:aarch64: CRITICAL: aarch64: no boot records',
      'GUEST:x86_64/seabios:lockdown: CRITICAL: in-guest check lockdown fail on x86_64 (seabios)',
      // A rule's fix is not a mitigation: an open HIGH audit finding with only a fix blocks.
      'KCONFIG@x86_64:CONFIG_VMAP_STACK: HIGH without a proven mitigation: CONFIG_VMAP_STACK=y (kspp): FAIL: "is not set"',
      'GAP:ebpf:B-01: HIGH without a proven mitigation: not built: B-01, B-02; its mitigation\'s evidence did not pass: check seccomp (aarch64: no boot records; x86_64 seabios: not reported)',
      'GAP:apparmor:F-02: HIGH without a proven mitigation: not built: F-02',
    ]);
  });

  it('an open HIGH audit finding is mitigated only by a mitigations.yaml entry whose evidence all passed in this run', () => {
    const inp = inputs();
    const m = { option: 'CONFIG_VMAP_STACK', control: 'lockdown holds', evidence: [{ check: 'lockdown' }, { task: 'C-08' }], who: 'security', at: 'specs/audit/mitigations.yaml:20' };
    inp.mitigations = [m];
    const vmap = () => computeSecurityReport(inp).findings.find((f) => f.id === 'KCONFIG@x86_64:CONFIG_VMAP_STACK')!;
    // lockdown failed in seabios and aarch64 has no boots; C-08@aarch64 FAILed.
    expect(vmap()).toMatchObject({
      mitigation: null,
      mitigation_proof: {
        proven: false,
        evidence: [
          { kind: 'check', name: 'lockdown', passed: false, detail: 'aarch64: no boot records; x86_64 seabios: fail' },
          { kind: 'task', name: 'C-08', passed: false, detail: 'C-08@aarch64: FAIL' },
        ],
      },
    });
    expect(computeSecurityReport(inp).blocking).toContain(
      'KCONFIG@x86_64:CONFIG_VMAP_STACK: HIGH without a proven mitigation: CONFIG_VMAP_STACK=y (kspp): FAIL: "is not set"; its mitigation\'s evidence did not pass: check lockdown (aarch64: no boot records; x86_64 seabios: fail), task C-08 (C-08@aarch64: FAIL)',
    );
    // Evidence that passed everywhere proves it; the boot records and the state it rests on are cited.
    const ok = { variant: 'ovmf', verdict: 'PASS', checks: [{ name: 'lockdown', result: 'pass' }] };
    inp.boots = [
      { arch: 'aarch64', dir: 'b', records: [{ path: 'b/uefi.json', sha256: 'f'.repeat(64), boot: ok }] },
      { arch: 'x86_64', dir: 'c', records: [{ path: 'c/ovmf.json', sha256: 'b'.repeat(64), boot: ok }] },
    ];
    inp.records['C-08@aarch64'] = rec('C-08@aarch64', 'PASS');
    expect(vmap()).toMatchObject({ mitigation: 'lockdown holds', mitigation_proof: { proven: true, who: 'security', at: 'specs/audit/mitigations.yaml:20' } });
    expect(vmap().evidence.map((e) => e.path)).toEqual(['qa/x86_64/kconfig-audit.json', 'b/uefi.json', 'c/ovmf.json', 'state.json']);
    expect(computeSecurityReport(inp).blocking.filter((b) => b.includes('VMAP'))).toEqual([]);
    // Another arch or another desired value: not this entry.
    inp.mitigations = [{ ...m, arches: ['aarch64'] }];
    expect(vmap().mitigation).toBeNull();
    inp.mitigations = [{ ...m, desired: 'is not set' }];
    expect(vmap().mitigation).toBeNull();
    // Evidence naming a task tasks/ does not have can never pass.
    inp.mitigations = [{ ...m, evidence: [{ task: 'Z-99' }] }];
    expect(vmap().mitigation_proof?.evidence).toEqual([{ kind: 'task', name: 'Z-99', passed: false, detail: 'Z-99 is not in tasks/' }]);
  });

  it('says per layer what is proven on the host and in each guest', () => {
    const r = computeSecurityReport(inputs());
    expect(r.layers.map((l) => [l.id, l.host_passed, l.guest, l.not_in_catalog])).toEqual([
      ['kernel', ['A-01@aarch64', 'A-01@x86_64', 'G-03@aarch64', 'G-03@x86_64'], { aarch64: { passed: [], failed: [] }, x86_64: { passed: ['kernel'], failed: [] } }, []],
      ['seccomp', ['C-01', 'C-08@x86_64'], { aarch64: { passed: [], failed: [] }, x86_64: { passed: [], failed: ['seccomp'] } }, []],
      ['ebpf', [], { aarch64: { passed: [], failed: [] }, x86_64: { passed: [], failed: [] } }, []],
      ['apparmor', [], { aarch64: { passed: [], failed: [] }, x86_64: { passed: [], failed: [] } }, ['F-06']],
    ]);
    const md = securityReportMarkdown(r, ['aarch64', 'x86_64']);
    expect(md).toContain('| seccomp | C-01, C-08@x86_64 | – | **seccomp (not passed)** | 2 CRITICAL, 0 HIGH, 1 MEDIUM, 0 LOW |');
    expect(md).toContain('| AppArmor | – (not in tasks/: F-06) | – | – | 0 CRITICAL, 1 HIGH, 0 MEDIUM, 0 LOW |');
    expect(md).toContain('- mitigation: **none in place**');
    expect(md).toContain('- fix: set CONFIG_VMAP_STACK');
    expect(md).toContain('- mitigation (**not proven in this run**): other layers confine');
    expect(md).toContain('  - check seccomp: **not passed**: aarch64: no boot records; x86_64 seabios: not reported');
  });

  it('PASSes when what is left is waived, mitigated or below HIGH', () => {
    const inp = inputs();
    inp.records['C-08@aarch64'] = rec('C-08@aarch64', 'PASS');
    inp.records['F-02'] = rec('F-02', 'PASS');
    const okBoot = { variant: 'virt', verdict: 'PASS', checks: [{ name: 'kernel', result: 'pass' }, { name: 'seccomp', result: 'pass' }, { name: 'lockdown', result: 'pass' }] };
    inp.boots = [
      { arch: 'aarch64', dir: 'b/aarch64', records: [{ path: 'b/aarch64/virt.json', sha256: 'f'.repeat(64), boot: okBoot }] },
      { arch: 'x86_64', dir: 'b/x86_64', records: [{ path: 'b/x86_64/ovmf.json', sha256: 'b'.repeat(64), boot: okBoot }] },
    ];
    inp.audits = [{ ...inp.audits[1]!, arch: 'aarch64', path: 'qa/aarch64/kconfig-audit.json' }, inp.audits[1]!];
    inp.mitigations = [{ option: 'CONFIG_VMAP_STACK', control: 'lockdown holds', evidence: [{ check: 'lockdown' }], who: 'security', at: 'm.yaml:1' }];
    const r = computeSecurityReport(inp);
    expect(r.blocking).toEqual([]);
    expect(r.findings.filter((f) => f.severity === 'HIGH').map((f) => [f.id, f.mitigation])).toEqual([
      ['KCONFIG@aarch64:CONFIG_VMAP_STACK', 'lockdown holds'],
      ['KCONFIG@x86_64:CONFIG_VMAP_STACK', 'lockdown holds'],
      ['GAP:ebpf:B-01', 'other layers confine'],
    ]);
    expect(r.verdict).toBe('PASS');
    expect(r.summary.open).toEqual({ CRITICAL: 0, HIGH: 3, MEDIUM: 1, LOW: 0 });
    expect(r.layers.find((l) => l.id === 'seccomp')?.guest).toEqual({ aarch64: { passed: ['seccomp'], failed: [] }, x86_64: { passed: ['seccomp'], failed: [] } });
  });

  it("lists each package the Buildroot backend built from another source: MEDIUM when Buildroot's patches were left out, else LOW; neither blocks", () => {
    const inp = inputs();
    inp.records['A-04@x86_64'] = rec('A-04@x86_64', 'PASS', {
      data: {
        overrides: [
          { package: 'busybox', wanted: '1.38.0', used: 'debian:busybox 1:1.35.0-4+deb12u1', buildrootPatchesNotApplied: ['package/busybox/0001-fix.patch'] },
          { package: 'host-fakeroot', wanted: '2.1.4', used: 'host:/usr/bin/fakeroot', buildrootPatchesNotApplied: [] },
        ],
      },
    });
    const r = computeSecurityReport(inp);
    const f = r.findings.filter((x) => x.id.startsWith('BUILDROOT-SOURCE:'));
    expect(f.map((x) => [x.id, x.severity, x.title, x.detail])).toEqual([
      [
        'BUILDROOT-SOURCE:A-04@x86_64:busybox',
        'MEDIUM',
        "A-04@x86_64: busybox built from debian:busybox 1:1.35.0-4+deb12u1, not Buildroot's 1.38.0",
        "Buildroot pins busybox 1.38.0; this image was built from debian:busybox 1:1.35.0-4+deb12u1; Buildroot's patches not applied: package/busybox/0001-fix.patch",
      ],
      [
        'BUILDROOT-SOURCE:A-04@x86_64:host-fakeroot',
        'LOW',
        "A-04@x86_64: host-fakeroot built from host:/usr/bin/fakeroot, not Buildroot's 2.1.4",
        'Buildroot pins host-fakeroot 2.1.4; this image was built from host:/usr/bin/fakeroot; Buildroot has no patches for it',
      ],
    ]);
    expect(f.every((x) => x.status === 'open' && x.evidence[0]?.path === STATE.path)).toBe(true);
    expect(r.blocking.some((b) => b.includes('BUILDROOT-SOURCE'))).toBe(false);
  });

  it('one failed in-guest check is enough to FAIL', () => {
    const inp = inputs();
    inp.records['C-08@aarch64'] = rec('C-08@aarch64', 'PASS');
    inp.records['F-02'] = rec('F-02', 'PASS');
    inp.audits = [{ ...inp.audits[1]!, arch: 'aarch64' }, inp.audits[1]!];
    inp.mitigations = [{ option: 'CONFIG_VMAP_STACK', control: 'C-01 holds', evidence: [{ task: 'C-01' }], who: 'security', at: 'm.yaml:1' }];
    const bad = { variant: 'uefi-dt', verdict: 'FAIL', checks: [{ name: 'seccomp', result: 'fail', value: 'no Seccomp field' }] };
    inp.boots = [
      { arch: 'aarch64', dir: 'b', records: [{ path: 'b/uefi-dt.json', sha256: 'f'.repeat(64), boot: bad }] },
      { arch: 'x86_64', dir: 'c', records: [{ path: 'c/ovmf.json', sha256: 'b'.repeat(64), boot: { variant: 'ovmf', verdict: 'PASS', checks: [{ name: 'seccomp', result: 'pass' }] } }] },
    ];
    const r = computeSecurityReport(inp);
    expect(r.verdict).toBe('FAIL');
    expect(r.blocking).toEqual([
      'GUEST:aarch64/uefi-dt:seccomp: CRITICAL: in-guest check seccomp fail on aarch64 (uefi-dt)',
      // ... and the eBPF gap's mitigation rests on that check.
      "GAP:ebpf:B-01: HIGH without a proven mitigation: not built: B-01, B-02; its mitigation's evidence did not pass: check seccomp (aarch64 uefi-dt: fail)",
    ]);
  });
});

describe('the layers file', () => {
  it('specs/audit/security-layers.yaml is valid', async () => {
    const schema = JSON.parse(await readFile(join(repo, LAYERS_SCHEMA), 'utf8')) as object;
    const r = parseSecurityLayers(await readFile(join(repo, LAYERS_FILE), 'utf8'), LAYERS_FILE, schema);
    expect(r.ok ? r.layers.map((l) => l.id) : r.problems.map(formatDiagnostic)).toEqual([
      'kernel',
      'module-signing-lockdown',
      'seccomp',
      'apparmor',
      'cgroups-namespaces',
      'ebpf',
      'secrets',
      'boot',
    ]);
    expect(await securityLayersDiagnostics(repo)).toEqual([]);
    // Every HIGH gap names a control in place and the evidence that proves it.
    if (r.ok) for (const l of r.layers) for (const t of l.tasks) if (t.gap.severity === 'HIGH') expect(t.gap.mitigation?.evidence.length, `${l.id} ${t.id}`).toBeGreaterThan(0);
  });

  it('validate: mitigation evidence naming no in-guest check, and a mitigation naming no rule, are located errors', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'h3-mit-'));
    try {
      await cp(join(repo, 'specs'), join(tmp, 'specs'), { recursive: true });
      await cp(join(repo, 'buildroot-external/board/clawos/checks.yaml'), join(tmp, 'buildroot-external/board/clawos/checks.yaml'), { recursive: true });
      await writeFile(
        join(tmp, MITIGATIONS_FILE),
        'format: clawos-audit-mitigations\nversion: 1.0.0\nmitigations:\n  - option: CONFIG_NOPE\n    control: c\n    evidence: [{ check: lockdwon }, { task: C-08 }]\n    who: security\n',
      );
      expect((await securityLayersDiagnostics(tmp)).map(formatDiagnostic)).toEqual([
        'specs/audit/mitigations.yaml:6:25: mitigation evidence: no in-guest check "lockdwon" in buildroot-external/board/clawos/checks.yaml',
        'specs/audit/mitigations.yaml:4:13: mitigations.0 (CONFIG_NOPE): matches no rule in specs/audit/kconfig-rules.yaml',
      ]);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('a task in two layers is refused with its location', async () => {
    const schema = JSON.parse(await readFile(join(repo, LAYERS_SCHEMA), 'utf8')) as object;
    const text = 'format: clawos-security-layers\nversion: 1.0.0\nlayers:\n  - id: a\n    title: A\n    tasks: [A-01]\n    gap: { severity: CRITICAL }\n  - id: b\n    title: B\n    tasks: [B-01, A-01]\n    gap: { severity: LOW }\n';
    const r = parseSecurityLayers(text, 'layers.yaml', schema);
    expect(r.ok ? [] : r.problems.map(formatDiagnostic)).toEqual(['layers.yaml:10:19: A-01 is already in layer a']);
  });
});

describe('G-04 on the real audit data, layers and mitigations', () => {
  it('the recorded configs (before the audit fixes) FAIL G-04: each open HIGH has a fix, and a fix is no mitigation', async () => {
    const r = computeSecurityReport(await realInputs({ aarch64: await recordedConfig('aarch64', '6.1.192'), x86_64: await recordedConfig('x86_64', '6.1.192') }));
    expect(r.verdict).toBe('FAIL');
    expect(r.blocking.map((b) => b.split(':').slice(0, 2).join(':'))).toEqual([
      'KCONFIG@aarch64:CONFIG_ARM64_PAN',
      'KCONFIG@aarch64:CONFIG_BUG',
      'KCONFIG@aarch64:CONFIG_FORTIFY_SOURCE',
      'KCONFIG@aarch64:CONFIG_HARDENED_USERCOPY',
      'KCONFIG@aarch64:CONFIG_MITIGATE_SPECTRE_BRANCH_HISTORY',
      'KCONFIG@aarch64:CONFIG_RODATA_FULL_DEFAULT_ENABLED',
      'KCONFIG@aarch64:CONFIG_UNMAP_KERNEL_AT_EL0',
      'KCONFIG@aarch64:CONFIG_VMAP_STACK',
      'KCONFIG@x86_64:CONFIG_BUG',
      'KCONFIG@x86_64:CONFIG_CPU_MITIGATIONS',
      'KCONFIG@x86_64:CONFIG_FORTIFY_SOURCE',
      'KCONFIG@x86_64:CONFIG_HARDENED_USERCOPY',
      'KCONFIG@x86_64:CONFIG_PAGE_TABLE_ISOLATION',
      'KCONFIG@x86_64:CONFIG_RETPOLINE',
      'KCONFIG@x86_64:CONFIG_VMAP_STACK',
    ]);
    expect(r.blocking[14]).toBe('KCONFIG@x86_64:CONFIG_VMAP_STACK: HIGH without a proven mitigation: CONFIG_VMAP_STACK=y (defconfig): FAIL: "is not set"');
    expect(r.findings.find((f) => f.id === 'KCONFIG@x86_64:CONFIG_VMAP_STACK')).toMatchObject({ fix: 'Set CONFIG_VMAP_STACK=y (tinyconfig turns it off).', mitigation: null });
  });

  it("today's fragments leave no open HIGH audit finding, and with the eBPF tasks proven the eBPF layer has none either: G-04 PASSes", async () => {
    const r = computeSecurityReport(await realInputs({ aarch64: await todayConfig('aarch64'), x86_64: await todayConfig('x86_64') }));
    expect(r.blocking).toEqual([]);
    expect(r.verdict).toBe('PASS');
    expect(r.findings.filter((f) => f.status === 'open' && (f.severity === 'HIGH' || f.severity === 'CRITICAL')).map((f) => f.id)).toEqual([]);
    // What stays open in the eBPF layer: the Aya consumer, metrics and port, below HIGH.
    expect(r.findings.filter((f) => f.id.startsWith('GAP:ebpf:')).map((f) => [f.id, f.severity])).toEqual([
      ['GAP:ebpf:B-05', 'MEDIUM'],
      ['GAP:ebpf:B-06', 'LOW'],
      ['GAP:ebpf:B-07', 'LOW'],
    ]);
  });

  it('with one eBPF in-guest check failing, the boot and the eBPF tasks it proves block G-04', async () => {
    const inp = await realInputs({ aarch64: await todayConfig('aarch64'), x86_64: await todayConfig('x86_64') });
    inp.boots[1]!.records[0]!.boot.checks = inp.boots[1]!.records[0]!.boot.checks!.map((c) => (c.name === 'ebpf-xdp' ? { ...c, result: 'fail' } : c));
    expect(computeSecurityReport(inp).blocking).toEqual(['GUEST:x86_64/x86_64-fw:ebpf-xdp: CRITICAL: in-guest check ebpf-xdp fail on x86_64 (x86_64-fw)']);
  });
});
