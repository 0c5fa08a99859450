/**
 * A recorded build for the report and release tests: a small catalog in a test
 * repo, two runs' event chains written with the vault's EventLog (payloads
 * shaped as the scheduler and gates write them), gate reports and stand-in
 * ISOs in the content store, and run 2's bundle signed with writeBundle by a
 * release key listed in a trust file.
 *
 * Run 1 builds everything (A-01@x86_64 takes 60 s). Run 2 changes the x86_64
 * kernel fragment: A-01@x86_64 (now 30 s), A-04@x86_64, G-05@x86_64 and
 * G-06@x86_64 run again, the rest is up to date. So the critical path moves
 * from the x86_64 chain (85.11 s) to the aarch64 one (79.11 s).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { sha256Hex } from '../lib/hash.js';
import { EventLog, eventsPath } from '../vault/event-chain.js';
import { storePath, storePut, writeBundle, type BundleArtifact } from '../vault/bundle.js';
import { initKey, loadSigner, trustDocument, type Signer } from '../vault/keys.js';
import { makeTestRepo, taskYaml, type TestRepo } from './helpers/test-repo.js';

export const RUN1 = 'run-20251121T100000Z-0001';
export const RUN2 = 'run-20251121T120000Z-0002';
export const EPOCH = 1763683200;

const GATES = `gates:
  P1: { title: Build standards, rule: r1, require_pass: [C-01], require_arches: [] }
  P2: { title: Build engine, rule: r2, require_pass: [A-01], require_arches: [] }
  P3: { title: Fill data, rule: r3, require_pass: [A-04], require_arches: [] }
  P4: { title: Calibrate, rule: r4, require_pass: [G-05, G-06], require_arches: [x86_64, aarch64] }
`;

export interface ReportBuild {
  repo: TestRepo;
  buildDir: string;
  trustFile: string;
  /** A trust file that lists only a key that did not sign the bundle. */
  otherTrustFile: string;
  release: Signer;
  cleanup(): Promise<void>;
}

export interface ReportBuildOptions {
  /** Gate P4 of run 2 (default GO). */
  p4?: 'GO' | 'NO-GO';
  /** Write run 2's bundle (default true). */
  bundle?: boolean;
  /** G-04 PASSes with a security report, or FAILs on it ('fail'); default: G-04 is NOT_CONFIGURED. */
  securityReport?: boolean | 'fail';
}

interface Rec {
  task: string;
  phase: string;
  status: string;
  start: string;
  ms: number;
  message: string;
  data?: unknown;
  outputs?: { path: string; sha256: string; size: number; store: string }[];
  evidence?: { label: string; path: string; sha256: string }[];
}

const at = (iso: string, plusMs: number) => new Date(Date.parse(iso) + plusMs).toISOString();

function endPayload(r: Rec, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const [id, arch] = r.task.split('@');
  return {
    task: r.task,
    task_id: id,
    arch: arch ?? null,
    phase: r.phase,
    agent: 'build-engineer',
    status: r.status,
    ...(r.status === 'PASS' ? {} : { reason: r.status === 'NOT_CONFIGURED' ? 'not-configured' : 'boot-panic' }),
    message: r.message,
    fingerprint: sha256Hex(`${r.task} ${r.start}`),
    outputs: r.outputs ?? [],
    evidence: r.evidence ?? [],
    ...(r.data !== undefined ? { data: r.data } : {}),
    started_at: r.start,
    finished_at: at(r.start, r.ms),
    duration_ms: r.ms,
    log: 'logs/agent-build-engineer-2025-11-21.log',
    ...extra,
  };
}

function boot(arch: string, variant: string, t: [number, number, number, number, number], duration: number) {
  const checks = [
    { name: 'kernel', result: 'pass', value: '6.1.0-clawos' },
    { name: 'lockdown', result: 'pass', value: 'none integrity [confidentiality]' },
    ...(arch === 'x86_64' ? [{ name: 'cpu-flags', result: 'pass', value: 'present=smep smap' }] : []),
  ];
  return {
    verdict: 'PASS',
    reason: null,
    stage: 'marker',
    stage_ms: { firmware: t[0], kernel: t[1], init: t[2], checks: t[3], marker: t[4] },
    checks,
    failed_checks: [],
    missing_checks: [],
    message: `CLAWOS-BOOT-OK, all ${checks.length} expected checks passed`,
    arch,
    variant,
    machine: arch === 'x86_64' ? 'q35' : 'virt',
    accel: 'tcg',
    accel_note: 'KVM probe failed: no kernel output in 15 s; using TCG',
    duration_ms: duration,
    command: `qemu-system-${arch} …`,
    serial_log: `${variant}.serial.log`,
    qemu_version: '7.2.22',
    qemu_exit: { code: 0, signal: null },
    qemu_stderr: [],
  };
}

export const BOOTS = {
  x86_64: [boot('x86_64', 'seabios', [200, 5500, 7600, 8600, 10500], 10700), boot('x86_64', 'ovmf', [8500, 12500, 15700, 16700, 18400], 18600)],
  aarch64: [boot('aarch64', 'uefi-acpi', [200, 7800, 10200, 11400, 12900], 13100), boot('aarch64', 'uefi-dt', [100, 8100, 10200, 11800, 13200], 13400)],
};

/** The lock run 2's bundle was built by: it pins the kernel tarball the provenance names. */
const REPORT_LOCK = Buffer.from(
  'lock_version: 1\ndistribution: test\ndebs:\n  - { name: linux-source-6.1, arch: all, version: 6.1.158-1, sha256: ' +
    'd'.repeat(64) +
    ', size: 1, why: kernel, files: { usr/src/linux-source-6.1.tar.xz: ' +
    'c'.repeat(64) +
    ' } }\nhost_tools: {}\n',
);

export async function makeReportBuild(o: ReportBuildOptions = {}): Promise<ReportBuild> {
  const repo = await makeTestRepo(GATES);
  const w = (id: string, y: Parameters<typeof taskYaml>[0]) => repo.writeTask(id, taskYaml(y));
  await w('C-01', { id: 'C-01', action: 'pending: freeze' });
  await w('A-01', { id: 'A-01', phase: 'P2', perArch: true, deps: ['C-01'], action: 'pending: kernel' });
  await w('B-01', { id: 'B-01', phase: 'P2', agent: 'ebpf', action: 'pending: ebpf' });
  await w('A-04', { id: 'A-04', phase: 'P3', perArch: true, deps: ['A-01'], action: 'pending: rootfs' });
  await w('G-05', { id: 'G-05', phase: 'P4', perArch: true, deps: ['A-04'], action: 'pending: iso' });
  await w('G-06', { id: 'G-06', phase: 'P4', perArch: true, deps: ['G-05'], action: 'pending: boot' });
  await w('G-04', { id: 'G-04', phase: 'P4', agent: 'observability', deps: ['G-06'], action: 'pending: security report' });

  const buildDir = repo.buildDir;
  const put = async (rel: string, data: string | Buffer) => {
    await mkdir(join(buildDir, rel, '..'), { recursive: true });
    await writeFile(join(buildDir, rel), data);
    const sha256 = await storePut(buildDir, join(buildDir, rel));
    return { path: rel, sha256, size: Buffer.byteLength(data), store: relative(buildDir, storePath(buildDir, sha256)) };
  };
  const files: Record<string, Awaited<ReturnType<typeof put>>> = {};
  for (const arch of ['x86_64', 'aarch64']) {
    files[`iso-${arch}`] = await put(`build-engineer/${arch}/clawos-${arch}.iso`, Buffer.alloc(70_000, arch === 'x86_64' ? 0x58 : 0x41));
    files[`kernel-${arch}`] = await put(`kernel-engineer/${arch}/vmlinuz`, `kernel ${arch}\n`);
    for (const b of BOOTS[arch as 'x86_64']) files[`boot-${b.variant}`] = await put(`build-engineer/${arch}/boot/${b.variant}.json`, JSON.stringify(b, null, 2) + '\n');
  }
  // The shape G-04 writes (pipeline/security/security-report.ts).
  const secDoc = {
    format: 'clawos-security-report@1',
    verdict: o.securityReport === 'fail' ? 'FAIL' : 'PASS',
    blocking: o.securityReport === 'fail' ? ['GUEST-lockdown: open MEDIUM <x> treated as blocking'] : [],
    summary: { findings: 2, open: { CRITICAL: 0, HIGH: 0, MEDIUM: 1, LOW: 0 }, waived: { CRITICAL: 0, HIGH: 1, MEDIUM: 0, LOW: 0 } },
    inputs: [],
    layers: [],
    findings: [
      {
        id: 'KCONF-USER_NS',
        layer: 'kernel config',
        severity: 'HIGH',
        status: 'waived',
        title: 'CONFIG_USER_NS=y <needed> & "waived"',
        detail: 'kernel-hardening-checker: is not set',
        rests_on: 'the G-03 audit of x86_64',
        evidence: [{ label: 'audit', path: 'qa/x86_64/audit.json', sha256: 'a'.repeat(64) }],
        mitigation: 'seccomp refuses unshare',
        waiver: { reason: 'the sandbox needs user namespaces', who: 'security' },
      },
      { id: 'GUEST-lockdown', layer: 'in-guest', severity: 'MEDIUM', status: 'open', title: 'lockdown is confidentiality', detail: '', rests_on: 'boot records', evidence: [], mitigation: null },
    ],
  };
  if (o.securityReport) files.sec = await put('observability/security-report.json', JSON.stringify(secDoc, null, 2) + '\n');

  const gateReports = new Map<string, string>();
  const gateFiles = async (phase: string, rec: string, run: string) => {
    const json = await put(`gates/${phase}/gate-report.json`, JSON.stringify({ format: 'clawos-gate-report@1', phase, recommendation: rec, run }, null, 2) + '\n');
    const md = await put(`gates/${phase}/gate-report.md`, `# Gate ${phase}\n\n**Recommendation: ${rec}**\n`);
    for (const f of [json, md]) gateReports.set(f.path, f.sha256);
    return [json, md];
  };

  const keyDir = join(buildDir, '..', 'keys');
  const from = new Date('2025-01-01T00:00:00Z');
  const rk = await initKey(keyDir, 'release', { validFrom: from });
  const other = await initKey(keyDir, 'release', { validFrom: from });
  const trustFile = join(buildDir, '..', 'keys.json');
  const otherTrustFile = join(buildDir, '..', 'other-keys.json');
  await writeFile(trustFile, JSON.stringify(trustDocument([rk.trustEntry]), null, 2) + '\n');
  await writeFile(otherTrustFile, JSON.stringify(trustDocument([other.trustEntry]), null, 2) + '\n');
  const release = await loadSigner(rk.privateKeyPath, 'release');

  // --- run 1: everything built for the first time
  const T1 = '2025-11-21T10:00:00.000Z';
  const run1: Rec[] = [
    { task: 'C-01', phase: 'P1', status: 'PASS', start: at(T1, 1000), ms: 100, message: 'P1.2 1.0.0 frozen' },
    { task: 'A-01@x86_64', phase: 'P2', status: 'PASS', start: at(T1, 2000), ms: 60_000, message: 'kernel 6.1.0-clawos built', outputs: [files['kernel-x86_64']!] },
    { task: 'A-01@aarch64', phase: 'P2', status: 'PASS', start: at(T1, 2000), ms: 50_000, message: 'kernel 6.1.0-clawos built', outputs: [files['kernel-aarch64']!] },
    { task: 'B-01', phase: 'P2', status: 'NOT_CONFIGURED', start: at(T1, 2000), ms: 1, message: 'component <aya-ebpf> & friends is "not configured"' },
    { task: 'A-04@x86_64', phase: 'P3', status: 'PASS', start: at(T1, 63_000), ms: 2000, message: 'rootfs' },
    { task: 'A-04@aarch64', phase: 'P3', status: 'PASS', start: at(T1, 63_000), ms: 1500, message: 'rootfs' },
    { task: 'G-05@x86_64', phase: 'P4', status: 'PASS', start: at(T1, 66_000), ms: 3000, message: 'ISO', outputs: [files['iso-x86_64']!] },
    { task: 'G-05@aarch64', phase: 'P4', status: 'PASS', start: at(T1, 66_000), ms: 2500, message: 'ISO', outputs: [files['iso-aarch64']!] },
    { task: 'G-06@x86_64', phase: 'P4', status: 'PASS', start: at(T1, 70_000), ms: 20_000, message: 'x86_64: all 2 boots passed', data: BOOTS.x86_64, outputs: [files['boot-seabios']!, files['boot-ovmf']!], evidence: [files['boot-seabios']!, files['boot-ovmf']!].map((f) => ({ label: 'boot record', path: f.path, sha256: f.sha256 })) },
    { task: 'G-06@aarch64', phase: 'P4', status: 'PASS', start: at(T1, 70_000), ms: 25_000, message: 'aarch64: all 2 boots passed', data: BOOTS.aarch64, outputs: [files['boot-uefi-acpi']!, files['boot-uefi-dt']!], evidence: [files['boot-uefi-acpi']!, files['boot-uefi-dt']!].map((f) => ({ label: 'boot record', path: f.path, sha256: f.sha256 })) },
    o.securityReport === 'fail'
      ? { task: 'G-04', phase: 'P4', status: 'FAIL', start: at(T1, 96_000), ms: 10, message: '1 blocking finding', evidence: [{ label: 'security report (JSON)', path: files.sec!.path, sha256: files.sec!.sha256 }] }
      : o.securityReport
      ? { task: 'G-04', phase: 'P4', status: 'PASS', start: at(T1, 96_000), ms: 10, message: '2 findings, none blocking', outputs: [files.sec!] }
      : { task: 'G-04', phase: 'P4', status: 'NOT_CONFIGURED', start: at(T1, 96_000), ms: 10, message: 'Not implemented yet: the security report comes with issue "Security layers".' },
  ];

  const writeRun = async (runId: string, t0: string, recs: (Rec & { why?: string[]; upToDate?: boolean })[], p4: 'GO' | 'NO-GO', endNote: Record<string, unknown>) => {
    let clock = Date.parse(t0);
    const log = await EventLog.open(eventsPath(buildDir, runId), runId, { now: () => new Date((clock += 500)) });
    await log.append('run-start', { clawos_version: '0.1.0', arches: ['x86_64', 'aarch64'], phases: ['P1', 'P2', 'P3', 'P4'], jobs: 2, source_date_epoch: EPOCH });
    for (const phase of ['P1', 'P2', 'P3', 'P4']) {
      for (const r of recs.filter((x) => x.phase === phase)) {
        if (!r.upToDate) await log.append('task-start', { task: r.task, task_id: r.task.split('@')[0]!, arch: r.task.split('@')[1] ?? null, phase, agent: 'build-engineer', fingerprint: 'f', why: r.why ?? ['no earlier result'] });
        if (Array.isArray(r.data)) {
          for (const b of r.data as ReturnType<typeof boot>[]) {
            await log.append('boot-verdict', { task: r.task, arch: b.arch, variant: b.variant, verdict: b.verdict, reason: null, stage: b.stage, stage_ms: b.stage_ms, message: b.message, accel: b.accel, duration_ms: b.duration_ms, serial_log: null, record: null, ...(r.upToDate ? { up_to_date: true } : {}) });
          }
        }
        await log.append('task-end', endPayload(r, r.upToDate ? { up_to_date: true } : {}));
      }
      const rec = phase === 'P4' ? p4 : 'GO';
      const reports = (await gateFiles(phase, rec, runId)).map(({ size: _s, ...f }) => f);
      await log.append('gate', {
        phase,
        recommendation: rec,
        blockers: rec === 'GO' ? [] : ['G-06@aarch64 is FAIL: uefi-dt: boot-panic'],
        coverage: phase === 'P2' ? '2/3 task instances passed; NOT_CONFIGURED (not built, not counted as passed): B-01' : `${recs.filter((x) => x.phase === phase && x.status === 'PASS').length}/${recs.filter((x) => x.phase === phase).length} task instances passed`,
        inputs_fingerprint: 'i',
        kept: false,
        decided_at: new Date(clock).toISOString(),
        reports,
        evidence: [],
      });
    }
    await log.append('run-end', { status: p4 === 'GO' ? 'passed' : 'failed', gates: ['P1', 'P2', 'P3', 'P4'].map((p) => ({ phase: p, recommendation: p === 'P4' ? p4 : 'GO' })), ...endNote });
    const events = log.eventBytes();
    await log.close();
    return events;
  };

  await writeRun(RUN1, T1, run1, 'GO', { bundle: { status: 'none', reason: 'no release key in /keys: bundle not signed; run `clawos-build keys init --role release`' } });

  // --- run 2: the x86_64 kernel fragment changed
  const T2 = '2025-11-21T12:00:00.000Z';
  const changed: Record<string, { ms: number; why: string[] }> = {
    'A-01@x86_64': { ms: 30_000, why: ['input kernel-config/x86_64.config changed'] },
    'A-04@x86_64': { ms: 2000, why: ['outputs of A-01@x86_64 changed'] },
    'G-05@x86_64': { ms: 3000, why: ['outputs of A-04@x86_64 changed'] },
    'G-06@x86_64': { ms: 20_000, why: ['outputs of G-05@x86_64 changed'] },
  };
  let t = Date.parse(T2) + 2000;
  const run2 = run1.map((r) => {
    const c = changed[r.task];
    if (!c) return { ...r, upToDate: true };
    const start = new Date(t).toISOString();
    t += c.ms + 1000;
    return { ...r, start, ms: c.ms, why: c.why };
  });
  const p4 = o.p4 ?? 'GO';
  const signed = o.bundle !== false && p4 === 'GO';
  await writeRun(RUN2, T2, run2, p4, { bundle: signed ? { status: 'signing', dir: `vault/bundles/${RUN2}`, release_key: release.keyid } : { status: 'none', reason: p4 === 'GO' ? 'no release key in /keys: bundle not signed' : 'no bundle: gate P4 said NO-GO' } });

  if (signed) {
    const arts: BundleArtifact[] = [];
    for (const arch of ['x86_64', 'aarch64']) {
      arts.push({ path: files[`iso-${arch}`]!.path, sha256: files[`iso-${arch}`]!.sha256, kind: 'iso' });
      arts.push({ path: files[`kernel-${arch}`]!.path, sha256: files[`kernel-${arch}`]!.sha256, kind: 'kernel' });
    }
    for (const [path, sha256] of gateReports) arts.push({ path, sha256, kind: 'report' });
    await writeBundle({
      buildDir,
      outDir: join(buildDir, 'vault', 'bundles', RUN2),
      runId: RUN2,
      release: '0.1.0-alpha',
      builderId: 'https://clawos.dev/clawos-build',
      artifacts: arts.sort((a, b) => (a.path < b.path ? -1 : 1)),
      eventsFile: eventsPath(buildDir, RUN2),
      extraFiles: [{ path: 'inputs.lock.yaml', bytes: REPORT_LOCK }],
      provenance: {
        inputLock: { name: 'inputs.lock.yaml', sha256: sha256Hex(REPORT_LOCK) },
        kernelSource: { name: 'linux-source-6.1.tar.xz', sha256: 'c'.repeat(64) },
        debianPackages: [],
        frozenSpecs: [],
        startedOn: new Date(T2),
        finishedOn: new Date(Date.parse(T2) + 60_000),
      },
      releaseKey: release,
    });
  }
  return { repo, buildDir, trustFile, otherTrustFile, release, cleanup: () => repo.cleanup() };
}
