/**
 * The vault wired into real runs: a pipeline run (real scheduler, gates and
 * vault; stand-in build steps, recorded serial consoles) writes a hash-chained
 * event log, stores every output, cites store objects in its gate reports, and
 * ends in a signed bundle that verifies. Then the tamper suite on that bundle:
 * each case of issue 3 gives exactly its code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, cp, lstat, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ARCHES, BUSYBOX, filler, KERNEL_RELEASE, makePipelineFixture, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';
import { loadSigner, loadTrust, type Signer, type TrustRoot } from '../vault/keys.js';
import { verifyBundle } from '../vault/verify.js';
import { exportBundle } from '../vault/export.js';
import { ATTESTATION_FILE, EVENTS_FILE, MANIFEST_FILE, type BundleManifest } from '../vault/bundle.js';
import { resignManifest, rehash } from './fixtures/vault/make-bundle.js';
import { bundleEntries, rawTar } from './fixtures/vault/raw-tar.js';
import { vaultStatus } from '../vault/vault-history.js';
import { FREEZE_FILE, FREEZE_HINT, FreezeRefused, freezeSpecs, loadFreezeState, readSpec } from '../vault/freeze-specs.js';
import { UserError } from '../lib/errors.js';
import { envelopeBytes, FREEZE_PAYLOAD_TYPE, signEnvelope } from '../vault/dsse.js';
import { canonicalBytes } from '../vault/jcs.js';
import { initKey } from '../vault/keys.js';
import type { VaultEvent } from '../vault/event-chain.js';
import type { RunFinish } from '../pipeline/run/phases.js';
import { sha256File, sha256Hex } from '../lib/hash.js';

let fx: PipelineFixture;
let first: RunFinish;
let firstEvents: VaultEvent[];
let trust: TrustRoot;
let release: Signer;

async function events(file: string): Promise<VaultEvent[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as VaultEvent);
}
const ofType = (evs: VaultEvent[], t: string) => evs.filter((e) => e.type === t);
const tasks = (evs: VaultEvent[], t: string) => ofType(evs, t).map((e) => e.payload.task as string).sort();

beforeAll(async () => {
  fx = await makePipelineFixture();
  const r = await fx.run();
  first = r.finish;
  firstEvents = await events(first.eventsFile);
  trust = await loadTrust(fx.trustFile);
  release = await loadSigner(fx.keys.release.privateKeyPath, 'release');
});
afterAll(() => fx.cleanup());

const INSTANCES = ['A-01@aarch64', 'A-01@x86_64', 'A-04@aarch64', 'A-04@x86_64', 'C-06', 'G-05@aarch64', 'G-05@x86_64', 'G-06@aarch64', 'G-06@x86_64'];

describe('a pipeline run records itself in the vault', () => {
  it('chains run-start, every task start and end, each stored output, each gate and boot verdict, then run-end', () => {
    expect(firstEvents[0]!.type).toBe('run-start');
    expect(firstEvents[0]!.payload).toMatchObject({ arches: ARCHES, phases: ['P1', 'P2', 'P3', 'P4'], source_date_epoch: 1763683200 });
    expect(firstEvents.at(-1)!.type).toBe('run-end');
    expect(firstEvents.at(-1)!.payload).toMatchObject({ status: 'passed', bundle: { status: 'signing', dir: `vault/bundles/${first.runId}`, release_key: fx.keys.release.keyid } });
    expect(firstEvents.map((e) => e.seq)).toEqual(firstEvents.map((_e, i) => i));
    expect(tasks(firstEvents, 'task-start')).toEqual(INSTANCES);
    expect(tasks(firstEvents, 'task-end')).toEqual(INSTANCES);
    // C-06 2 files, A-01 2 per arch, A-04 2 per arch, G-05 1 per arch, G-06 4 per arch.
    expect(ofType(firstEvents, 'artifact')).toHaveLength(2 + 4 + 4 + 2 + 8);
    expect(ofType(firstEvents, 'gate').map((e) => [e.payload.phase, e.payload.recommendation, e.payload.kept])).toEqual([
      ['P1', 'GO', false],
      ['P2', 'GO', false],
      ['P3', 'GO', false],
      ['P4', 'GO', false],
    ]);
    expect(ofType(firstEvents, 'boot-verdict').map((e) => `${e.payload.arch} ${e.payload.variant} ${e.payload.verdict}`).sort()).toEqual([
      'aarch64 uefi-acpi PASS',
      'aarch64 uefi-dt PASS',
      'x86_64 ovmf PASS',
      'x86_64 seabios PASS',
    ]);
    const end = ofType(firstEvents, 'task-end').find((e) => e.payload.task === 'G-05@x86_64')!.payload;
    expect(end).toMatchObject({ status: 'PASS', fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/), outputs: [{ path: 'build-engineer/x86_64/clawos-x86_64.iso', size: 256 * 1024 }] });
  });

  it('keeps every output and boot log in the content store, read-only, under its sha256', async () => {
    for (const e of ofType(firstEvents, 'artifact')) {
      const obj = join(fx.repo.buildDir, e.payload.store as string);
      expect(e.payload.store).toBe(`vault/store/sha256/${e.payload.sha256 as string}`);
      expect(await sha256File(obj)).toBe(e.payload.sha256);
      expect((await stat(obj)).mode & 0o777).toBe(0o444);
    }
    const boot = ofType(firstEvents, 'boot-verdict').find((e) => e.payload.variant === 'seabios')!.payload as { serial_log: { path: string; sha256: string; store: string } };
    expect(boot.serial_log.path).toBe('build-engineer/x86_64/boot/seabios.serial.log');
    expect(await sha256File(join(fx.repo.buildDir, boot.serial_log.store))).toBe(boot.serial_log.sha256);
  });

  it('gate reports cite vault hashes: each piece of evidence names its store object', async () => {
    const report = JSON.parse(await readFile(join(fx.repo.buildDir, 'gates/P4/gate-report.json'), 'utf8')) as { checks: { id: string; evidence: { path: string; sha256: string; store: string }[] }[] };
    const evidence = report.checks.flatMap((c) => c.evidence);
    expect(evidence).toHaveLength(2 + 8);
    for (const ev of evidence) {
      expect(ev.store).toBe(`vault/store/sha256/${ev.sha256}`);
      expect(await sha256File(join(fx.repo.buildDir, ev.store))).toBe(ev.sha256);
    }
    const gate = ofType(firstEvents, 'gate').at(-1)!.payload as { reports: { path: string; sha256: string }[]; evidence: unknown[] };
    expect(gate.reports.map((r) => r.path)).toEqual(['gates/P4/gate-report.json', 'gates/P4/gate-report.md']);
    expect(gate.reports[0]!.sha256).toBe(await sha256File(join(fx.repo.buildDir, 'gates/P4/gate-report.json')));
    expect(gate.evidence).toHaveLength(10);
  });

  it('writes a signed bundle of the ISOs, kernels, initramfs images and reports that verifies offline', async () => {
    const b = first.bundle!;
    expect(b.dir).toBe(join(fx.repo.buildDir, 'vault', 'bundles', first.runId));
    expect((await readFile(join(fx.repo.buildDir, 'vault', 'bundles', 'latest'), 'utf8'))).toBe(`${first.runId}\n`);
    const kinds = Object.fromEntries(['iso', 'kernel', 'initramfs', 'report'].map((k) => [k, b.subjects.filter((s) => s.kind === k).map((s) => s.path)]));
    expect(kinds).toEqual({
      iso: ['build-engineer/aarch64/clawos-aarch64.iso', 'build-engineer/x86_64/clawos-x86_64.iso'],
      kernel: ['kernel-engineer/aarch64/vmlinuz', 'kernel-engineer/x86_64/vmlinuz'],
      initramfs: ['build-engineer/aarch64/initramfs.cpio.gz', 'build-engineer/x86_64/initramfs.cpio.gz'],
      report: [
        'build-engineer/aarch64/boot/uefi-acpi.json',
        'build-engineer/aarch64/boot/uefi-acpi.serial.log',
        'build-engineer/aarch64/boot/uefi-dt.json',
        'build-engineer/aarch64/boot/uefi-dt.serial.log',
        'build-engineer/x86_64/boot/ovmf.json',
        'build-engineer/x86_64/boot/ovmf.serial.log',
        'build-engineer/x86_64/boot/seabios.json',
        'build-engineer/x86_64/boot/seabios.serial.log',
        'gates/P1/gate-report.json',
        'gates/P1/gate-report.md',
        'gates/P2/gate-report.json',
        'gates/P2/gate-report.md',
        'gates/P3/gate-report.json',
        'gates/P3/gate-report.md',
        'gates/P4/gate-report.json',
        'gates/P4/gate-report.md',
      ],
    });
    const v = await verifyBundle(b.dir, trust);
    expect(v).toMatchObject({ ok: true, code: 'PASS', run_id: first.runId, release: '0.1.0-alpha' });
    expect(v.detail).toBe(`run ${first.runId} (release 0.1.0-alpha): 29 files, ${firstEvents.length} events, log root ${b.logRootB64u}`);
    // The bundle's event log is the run's, byte for byte.
    expect(await readFile(join(b.dir, EVENTS_FILE))).toEqual(await readFile(first.eventsFile));

    const env = JSON.parse(await readFile(join(b.dir, ATTESTATION_FILE), 'utf8')) as { payload: string };
    const st = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
    const deps = st.predicate.buildDefinition.resolvedDependencies as { name: string; uri?: string; digest: { sha256: string }; annotations: Record<string, unknown> }[];
    const kernel = deps.find((d) => d.annotations.kind === 'kernel-source')!;
    expect(kernel).toMatchObject({ name: 'linux-test.tar.xz', uri: `file://${join(fx.repo.root, '..', 'linux-test.tar.xz')}`, annotations: { version: KERNEL_RELEASE } });
    expect(kernel.digest.sha256).toBe(await sha256File(join(fx.repo.root, '..', 'linux-test.tar.xz')));
    expect(deps.filter((d) => d.annotations.kind === 'debian-package').map((d) => d.uri)).toEqual([
      `pkg:deb/debian/busybox-static@${encodeURIComponent(BUSYBOX.version)}?arch=amd64`,
      `pkg:deb/debian/busybox-static@${encodeURIComponent(BUSYBOX.version)}?arch=arm64`,
    ]);
    const frozen = deps.filter((d) => d.annotations.kind === 'frozen-spec');
    // Every frozen spec: the P1 specs and the audit's rules and waivers.
    const frozenSpecs: string[] = [];
    for (const dir of ['specs/audit', 'specs/p1']) {
      frozenSpecs.push(...(await readdir(join(fx.repo.root, dir)).catch(() => [] as string[])).filter((n) => n.endsWith('.yaml')).map((n) => `${dir}/${n}`));
    }
    expect(frozen.map((d) => d.name)).toEqual(frozenSpecs.sort());
    expect(frozen.some((d) => d.name === 'specs/audit/waivers.yaml')).toBe(true);
    const quotas = frozen.find((d) => d.name === 'specs/p1/cgroup-quotas.yaml')!;
    expect(quotas.digest.sha256).toBe(await sha256File(join(fx.repo.root, 'specs/p1/cgroup-quotas.yaml')));
    expect(quotas.annotations).toMatchObject({ spec_id: 'P1.5', frozen_sha256: quotas.digest.sha256 });
    // What the run read, as the run-start event recorded it, is what the attestation cites.
    const read = (firstEvents[0]!.payload.freeze as { read: { path: string; sha256: string }[] }).read;
    expect(frozen.map((d) => ({ path: d.name, sha256: d.digest.sha256 }))).toEqual(read);
    expect(st.predicate.runDetails.metadata).toEqual({ invocationId: first.runId, startedOn: firstEvents[0]!.time, finishedOn: firstEvents.at(-1)!.time });
    expect(st.predicate.runDetails.builder).toMatchObject({ id: 'https://clawos.dev/clawos-build' });
    // The lock it was built by, carried and attested.
    expect(deps.find((d) => d.annotations.kind === 'input-lock')).toMatchObject({ name: 'inputs.lock.yaml', digest: { sha256: await sha256File(join(fx.repo.root, 'inputs.lock.yaml')) } });
  });

  it('attests a CycloneDX 1.5 and an SPDX 2.3 SBOM per image: the kernel with its config hash, the locked packages, ClawOS parts', async () => {
    const b = first.bundle!;
    expect(b.subjects.filter((s) => s.kind === 'sbom').map((s) => s.path)).toEqual([
      'sbom/aarch64/clawos-aarch64.cdx.json',
      'sbom/aarch64/clawos-aarch64.spdx.json',
      'sbom/x86_64/clawos-x86_64.cdx.json',
      'sbom/x86_64/clawos-x86_64.spdx.json',
    ]);
    const state = JSON.parse(await readFile(join(fx.repo.buildDir, 'state.json'), 'utf8')) as { instances: Record<string, { outputs: Record<string, { sha256: string }> }> };
    const out = (p: string) => Object.values(state.instances).map((r) => r.outputs[p]?.sha256).find(Boolean);
    const cdx = JSON.parse(await readFile(join(b.dir, 'artifacts/sbom/x86_64/clawos-x86_64.cdx.json'), 'utf8'));
    expect(cdx).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.5', metadata: { component: { type: 'operating-system', name: 'clawos-x86_64', version: '0.1.0-alpha', hashes: [{ alg: 'SHA-256', content: out('build-engineer/x86_64/clawos-x86_64.iso') }] } } });
    const linux = cdx.components.find((c: { name: string }) => c.name === 'linux');
    expect(linux).toMatchObject({ version: KERNEL_RELEASE, licenses: [{ expression: 'GPL-2.0-only' }], hashes: [{ alg: 'SHA-256', content: out('kernel-engineer/x86_64/vmlinuz') }] });
    expect(linux.properties).toContainEqual({ name: 'clawos:kernel-config-sha256', value: out('kernel-engineer/x86_64/config') });
    const bb = cdx.components.find((c: { name: string }) => c.name === 'busybox-static');
    expect(bb).toMatchObject({ version: BUSYBOX.version, purl: `pkg:deb/debian/busybox-static@${encodeURIComponent(BUSYBOX.version)}?arch=amd64`, licenses: [{ expression: 'GPL-2.0-only' }] });
    expect(bb.hashes[0].content).toBe(sha256Hex(filler('busybox amd64', 4096)));
    const sp = JSON.parse(await readFile(join(b.dir, 'artifacts/sbom/x86_64/clawos-x86_64.spdx.json'), 'utf8'));
    expect(sp).toMatchObject({ spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', documentDescribes: ['SPDXRef-clawos'] });
    expect(sp.packages.map((p: { name: string }) => p.name)).toEqual(['clawos-x86_64', ...cdx.components.map((c: { name: string }) => c.name)]);
    expect(sp.relationships).toHaveLength(cdx.components.length);
    // Made from content only: the same image gives the same documents (serial number included).
    expect(cdx.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('status comes from the vault: the latest task-end and gate events, not state.json', async () => {
    await rm(join(fx.repo.buildDir, 'state.json'));
    const s = await vaultStatus(fx.repo.buildDir);
    expect(s.problems).toEqual([]);
    expect(Object.keys(s.instances).sort()).toEqual(INSTANCES);
    expect(s.instances['G-06@x86_64']).toMatchObject({ status: 'PASS', run_id: first.runId });
    expect((s.instances['G-06@x86_64']!.data as { variant: string }[]).map((b) => b.variant)).toEqual(['seabios', 'ovmf']);
    expect(Object.fromEntries(Object.entries(s.gates).map(([p, g]) => [p, g.recommendation]))).toEqual({ P1: 'GO', P2: 'GO', P3: 'GO', P4: 'GO' });
  });

  it('a second run re-runs nothing, yet its own log is complete: an up-to-date task-end for each instance, and a bundle that verifies', async () => {
    // (state.json was removed above: the scheduler's index is rebuilt from the vault's PASS results.)
    const r = await fx.run();
    const evs = await events(r.finish.eventsFile);
    expect(r.events.filter((e) => e.type === 'task-start')).toEqual([]);
    expect(tasks(evs, 'task-start')).toEqual([]);
    expect(tasks(evs, 'task-end')).toEqual(INSTANCES);
    expect(ofType(evs, 'task-end').every((e) => e.payload.up_to_date === true)).toBe(true);
    expect(ofType(evs, 'artifact')).toEqual([]);
    expect(ofType(evs, 'boot-verdict')).toHaveLength(4);
    expect(ofType(evs, 'gate')).toHaveLength(4);
    expect((await verifyBundle(r.finish.bundle!.dir, trust)).code).toBe('PASS');
    const third = await fx.run();
    expect(ofType(await events(third.finish.eventsFile), 'gate').map((e) => e.payload.kept)).toEqual([true, true, true, true]);
  });

  it('a deleted or changed output is restored from the store (a hard link, read-only), not rebuilt', async () => {
    const iso = join(fx.repo.buildDir, 'build-engineer/x86_64/clawos-x86_64.iso');
    const want = await sha256File(iso);
    await rm(iso);
    await writeFile(join(fx.repo.buildDir, 'kernel-engineer/aarch64/vmlinuz'), 'tampered');
    const r = await fx.run();
    expect(r.events.filter((e) => e.type === 'task-start')).toEqual([]);
    expect(r.events.filter((e) => e.type === 'info').map((e) => (e as { message: string }).message)).toEqual([
      'A-01@aarch64: 1 output(s) restored from the vault store (last PASS), not rebuilt: kernel-engineer/aarch64/vmlinuz',
      'G-05@x86_64: 1 output(s) restored from the vault store (last PASS), not rebuilt: build-engineer/x86_64/clawos-x86_64.iso',
    ]);
    const st = await stat(iso);
    expect(await sha256File(iso)).toBe(want);
    expect(st.nlink).toBeGreaterThanOrEqual(2);
    expect(st.mode & 0o777).toBe(0o444);
    const end = ofType(await events(r.finish.eventsFile), 'task-end').find((e) => e.payload.task === 'G-05@x86_64')!.payload;
    expect(end).toMatchObject({ up_to_date: true, restored: ['build-engineer/x86_64/clawos-x86_64.iso'] });
    expect(r.results.map((x) => x.gate.recommendation)).toEqual(['GO', 'GO', 'GO', 'GO']);
  });

  it('a reverted change is restored from the earlier run that passed with the same inputs, and nothing is rebuilt', async () => {
    const frag = join(fx.repo.root, 'kernel-config/common.config');
    const before = await readFile(frag, 'utf8');
    await writeFile(frag, `${before}CONFIG_EXTRA=y\n`);
    const changed = await fx.run();
    // The stand-in ISO does not depend on the kernel's bytes, so the boots (G-06) stay up to date.
    expect(changed.events.filter((e) => e.type === 'task-start').map((e) => (e as { id: string }).id).sort()).toEqual(INSTANCES.filter((i) => i !== 'C-06' && !i.startsWith('G-06')));
    await writeFile(frag, before);
    const reverted = await fx.run();
    expect(reverted.events.filter((e) => e.type === 'task-start')).toEqual([]);
    const evs = await events(reverted.finish.eventsFile);
    const a01 = ofType(evs, 'task-end').find((e) => e.payload.task === 'A-01@x86_64')!.payload;
    expect(a01).toMatchObject({ up_to_date: true, restored_from: expect.stringMatching(/^run run-\d{8}T/), restored: ['kernel-engineer/x86_64/config', 'kernel-engineer/x86_64/vmlinuz'] });
    expect(await sha256File(join(fx.repo.buildDir, 'build-engineer/x86_64/clawos-x86_64.iso'))).toBe(first.bundle!.subjects.find((s) => s.kind === 'iso' && s.path.includes('x86_64'))!.sha256);
    expect((await verifyBundle(reverted.finish.bundle!.dir, trust)).code).toBe('PASS');
  });

  it('without a release key the run ends normally but says the bundle was not signed, and records that', async () => {
    const empty = join(fx.repo.root, '..', 'no-keys');
    const r = await fx.run({ keyDir: empty });
    const note = `no release key in ${empty}: bundle not signed; run \`clawos-build keys init --role release\``;
    expect(r.finish.bundle).toBeUndefined();
    expect(r.finish.bundleNote).toBe(note);
    expect((await events(r.finish.eventsFile)).at(-1)!.payload.bundle).toEqual({ status: 'none', reason: note });
    expect(existsSync(join(fx.repo.buildDir, 'vault', 'bundles', r.finish.runId))).toBe(false);
  });

  it('a failed task is rolled back: its rollback_cmd runs, then its last PASS outputs come back from the store', async () => {
    const frag = join(fx.repo.root, 'kernel-config/common.config');
    const before = await readFile(frag, 'utf8');
    const vmlinuz = join(fx.repo.buildDir, 'kernel-engineer/x86_64/vmlinuz');
    const good = await sha256File(vmlinuz);
    await writeFile(frag, `${before}FAKE_BREAK_BUILD=y\n`);
    const r = await fx.run({ phases: ['P1', 'P2'] });
    expect(r.results.map((x) => x.gate.recommendation)).toEqual(['GO', 'NO-GO']);
    const evs = await events(r.finish.eventsFile);
    const rb = ofType(evs, 'rollback').find((e) => e.payload.task === 'A-01@x86_64')!.payload;
    expect(rb).toMatchObject({ command: 'rm -f "$CLAWOS_OUT/vmlinuz" "$CLAWOS_OUT/config"', exit_code: 0 });
    expect((rb.restored as { path: string }[]).map((x) => x.path)).toEqual(['kernel-engineer/x86_64/config', 'kernel-engineer/x86_64/vmlinuz']);
    expect(await sha256File(vmlinuz)).toBe(good);
    expect(ofType(evs, 'task-end').find((e) => e.payload.task === 'A-01@x86_64')!.payload).toMatchObject({ status: 'FAIL', reason: 'exit-non-zero' });
    expect(r.finish.bundleNote).toBe('no bundle: gate P4 was not run (a release bundle needs `clawos-build all`)');
    await writeFile(frag, before);
  });
});

describe('frozen specs: every file the freeze covers is checked at every run', () => {
  /** The run's build dir as it is: what a stopped run must leave alone. */
  const snapshot = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const e of await readdir(fx.repo.buildDir, { recursive: true, withFileTypes: true })) {
      if (e.isFile()) out.push(`${join(e.parentPath, e.name)} ${(await stat(join(e.parentPath, e.name))).mtimeMs}`);
    }
    return out.sort();
  };
  const frozenAt = async (): Promise<string> => {
    const st = await loadFreezeState(fx.repo.root);
    if (!st.ok) throw new Error(st.detail);
    return st.payload.frozen_at;
  };
  const stop = (at: string, lines: string[]) =>
    `${lines.length} frozen spec${lines.length === 1 ? ' does' : 's do'} not match ${FREEZE_FILE} (frozen_at ${at}), so the run stops before any task:\n${lines.join('\n')}`;

  it('a spec no task lists in frozen_spec_deps (P1.7, D-02) edited under the same version stops the run, naming the file, both hashes and the command', async () => {
    const spec = join(fx.repo.root, 'specs/p1/ipc-protocol.yaml');
    const original = await readFile(spec);
    const { version } = (await readSpec(fx.repo.root, 'specs/p1/ipc-protocol.yaml'))!;
    const major = version.split('.')[0];
    await appendFile(spec, '# an unreviewed edit\n');
    const now = await sha256File(spec);
    const before = await snapshot();
    const err = await fx.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(
      stop(await frozenAt(), [
        `frozen spec specs/p1/ipc-protocol.yaml changed: frozen sha256 ${sha256Hex(original)}, current sha256 ${now}; version ${version} keeps major ${major} of frozen ${version}; a frozen spec changes only with a new major version and a new freeze`,
      ]),
    );
    expect((err as UserError).hint).toBe(FREEZE_HINT);
    expect((err as UserError).hint).toContain('`clawos-build spec freeze`');
    // Nothing was opened or written: no state, no events, no task.
    expect(await snapshot()).toEqual(before);
    await writeFile(spec, original);
  });

  it('every drifted, missing and unrecorded file at once, in specs/p1 and specs/audit alike', async () => {
    const quotas = join(fx.repo.root, 'specs/p1/cgroup-quotas.yaml');
    const waivers = join(fx.repo.root, 'specs/audit/waivers.yaml');
    const q = await readFile(quotas);
    const w = await readFile(waivers);
    const { version } = (await readSpec(fx.repo.root, 'specs/p1/cgroup-quotas.yaml'))!;
    await appendFile(quotas, '# an unreviewed edit\n');
    await rm(waivers);
    await writeFile(join(fx.repo.root, 'specs/audit/extra.yaml'), 'version: 1.0.0\n');
    const err = await fx.run({ phases: ['P1', 'P2'] }).catch((e: unknown) => e);
    expect((err as UserError).message).toBe(
      stop(await frozenAt(), [
        `frozen spec specs/audit/extra.yaml is not in the freeze record (frozen_at ${await frozenAt()}); freeze it first`,
        `frozen spec specs/audit/waivers.yaml is missing (frozen sha256 ${sha256Hex(w)})`,
        `frozen spec specs/p1/cgroup-quotas.yaml changed: frozen sha256 ${sha256Hex(q)}, current sha256 ${await sha256File(quotas)}; version ${version} keeps major 1 of frozen ${version}; a frozen spec changes only with a new major version and a new freeze`,
      ]),
    );
    // Re-freezing that edit without a new major version is refused too.
    await rm(join(fx.repo.root, 'specs/audit/extra.yaml'));
    await writeFile(waivers, w);
    await expect(freezeSpecs({ repoRoot: fx.repo.root, keyDir: fx.keyDir })).rejects.toThrow(
      `spec freeze refused:\nspecs/p1/cgroup-quotas.yaml: content changed (sha256 ${sha256Hex(q)} -> ${await sha256File(quotas)}) but version ${version} keeps major 1 of frozen ${version}; a frozen spec changes only with a new major version`,
    );
    await writeFile(quotas, q);
  });

  it('a spec edited during the run: no bundle, since the tasks may have read other bytes than the run checked', async () => {
    const spec = join(fx.repo.root, 'specs/p1/ipc-protocol.yaml');
    const original = await readFile(spec);
    const r = await fx.run({ beforeFinish: () => appendFile(spec, '# edited while the run ran\n') });
    expect(r.results.map((x) => x.gate.recommendation)).toEqual(['GO', 'GO', 'GO', 'GO']);
    expect(r.finish.bundle).toBeUndefined();
    expect(r.finish.bundleNote).toBe(
      `no bundle: frozen spec specs/p1/ipc-protocol.yaml changed during the run: read sha256 ${sha256Hex(original)} at the start, now sha256 ${await sha256File(spec)}`,
    );
    await writeFile(spec, original);
  });

  it('a freeze record signed by one role only is refused by spec freeze, and stops the run', async () => {
    const lone = join(fx.repo.root, '..', 'security-only');
    const k = await initKey(lone, 'security');
    const err = await freezeSpecs({ repoRoot: fx.repo.root, keyDir: lone }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FreezeRefused);
    expect((err as Error).message).toBe(
      `spec freeze needs a security key and a core key (a frozen spec changes only with both reviews); ${lone} has no core key\nhint: clawos-build keys init --role core`,
    );
    // A record carrying only the security signature (a valid, trusted one) does not count as frozen.
    const recFile = join(fx.repo.root, FREEZE_FILE);
    const good = await readFile(recFile);
    const payload = Buffer.from((JSON.parse(good.toString('utf8')) as { payload: string }).payload, 'base64');
    const security = await loadSigner(fx.keys.security.privateKeyPath, 'security');
    await writeFile(recFile, envelopeBytes(signEnvelope(canonicalBytes(JSON.parse(payload.toString('utf8'))), FREEZE_PAYLOAD_TYPE, [security])));
    const stopped = await fx.run({ phases: ['P1', 'P2'] }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(UserError);
    expect((stopped as UserError).message).toBe(
      `the frozen specs cannot be checked, so the run stops before any task: ${FREEZE_FILE} does not verify against specs/trust/keys.json: UNKNOWN_KEY: ` +
        `freeze record is not signed by both a security key and a core key: missing core (signed by: security ${security.keyid.slice(0, 16)})`,
    );
    expect(k.role).toBe('security');
    await writeFile(recFile, good);
    const back = await fx.run();
    expect(back.results.map((x) => x.gate.recommendation)).toEqual(['GO', 'GO', 'GO', 'GO']);
    expect(back.finish.bundle).toBeDefined();
  });
});

describe('tamper suite on the bundle of the pipeline run: each case gives exactly its code', () => {
  let n = 0;
  const copy = async (): Promise<string> => {
    const d = join(fx.repo.root, '..', `tamper-${++n}`);
    await cp(first.bundle!.dir, d, { recursive: true });
    return d;
  };
  const flip = async (file: string): Promise<void> => {
    const b = await readFile(file);
    const i = Math.floor(b.length / 2);
    b[i] = b[i]! ^ 0x01;
    await rm(file);
    await writeFile(file, b);
  };

  it.each([
    ['an ISO', 'artifacts/build-engineer/x86_64/clawos-x86_64.iso'],
    ['a kernel', 'artifacts/kernel-engineer/aarch64/vmlinuz'],
    ['an initramfs', 'artifacts/build-engineer/x86_64/initramfs.cpio.gz'],
    ['a gate report', 'artifacts/gates/P4/gate-report.json'],
    ['a boot report', 'artifacts/build-engineer/aarch64/boot/uefi-dt.serial.log'],
    ['the event log', EVENTS_FILE],
    ['the attestation', ATTESTATION_FILE],
  ])('one flipped byte in %s: HASH_MISMATCH', async (_what, p) => {
    const d = await copy();
    await flip(join(d, p));
    const r = await verifyBundle(d, trust);
    expect(r.code).toBe('HASH_MISMATCH');
    expect(r.detail).toMatch(new RegExp(`^${p.replace(/[.]/g, '\\.')}: sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}$`));
  });

  it('a deleted file: FILE_MISSING', async () => {
    const d = await copy();
    await rm(join(d, 'artifacts/kernel-engineer/x86_64/vmlinuz'));
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'FILE_MISSING', detail: 'artifacts/kernel-engineer/x86_64/vmlinuz is listed in the manifest but missing' });
  });

  it('an added file: UNEXPECTED_FILE', async () => {
    const d = await copy();
    await writeFile(join(d, 'artifacts/build-engineer/x86_64/extra.bin'), 'not attested');
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'UNEXPECTED_FILE', detail: 'artifacts/build-engineer/x86_64/extra.bin is not in the manifest' });
  });

  it('reordered or dropped events, manifest re-signed with the release key: CHAIN_BROKEN; the last event dropped: LOG_ROOT_MISMATCH', async () => {
    const lines = (await readFile(join(first.bundle!.dir, EVENTS_FILE), 'utf8')).split('\n').filter(Boolean);
    const swapped = [...lines];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    const d1 = await copy();
    await writeFile(join(d1, EVENTS_FILE), `${swapped.join('\n')}\n`);
    await rehash(d1, release, EVENTS_FILE);
    expect(await verifyBundle(d1, trust)).toMatchObject({ code: 'CHAIN_BROKEN', detail: 'events.jsonl: event 3: seq is 4, expected 3' });

    const d2 = await copy();
    await writeFile(join(d2, EVENTS_FILE), `${lines.filter((_l, i) => i !== 5).join('\n')}\n`);
    await rehash(d2, release, EVENTS_FILE);
    expect(await verifyBundle(d2, trust)).toMatchObject({ code: 'CHAIN_BROKEN', detail: 'events.jsonl: event 5: seq is 6, expected 5' });

    const d3 = await copy();
    await writeFile(join(d3, EVENTS_FILE), `${lines.slice(0, -1).join('\n')}\n`);
    await rehash(d3, release, EVENTS_FILE);
    expect(await verifyBundle(d3, trust)).toMatchObject({ code: 'LOG_ROOT_MISMATCH', detail: `events.jsonl: ${lines.length - 1} events, the manifest signed ${lines.length}` });
  });

  it('re-signed with an untrusted key: UNKNOWN_KEY', async () => {
    const d = await copy();
    await resignManifest(d, fx.keys.untrusted);
    const r = await verifyBundle(d, trust);
    expect(r.code).toBe('UNKNOWN_KEY');
    expect(r.detail).toBe(`manifest.dsse.json: no signature by a trusted release key (key ${fx.keys.untrusted.keyid} is not in the trust root)`);
  });

  it('signed with a revoked key: KEY_REVOKED', async () => {
    const d = await copy();
    await resignManifest(d, fx.keys.revoked);
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'KEY_REVOKED', detail: `manifest.dsse.json: key ${fx.keys.revoked.keyid} (release) is revoked` });
  });

  it('non-canonical JSON with the same meaning: NON_CANONICAL_JSON', async () => {
    const d = await copy();
    await resignManifest(d, release, (m) => m, (m) => Buffer.from(JSON.stringify(m, null, 2)));
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'NON_CANONICAL_JSON', detail: 'manifest.dsse.json: the signed payload is not RFC 8785 canonical JSON' });
  });

  it('the exported tar verifies; with a path-traversal entry or a symlink entry added: PATH_UNSAFE', async () => {
    const tar = join(fx.repo.root, '..', 'bundle.tar');
    const ex = await exportBundle(first.bundle!.dir, tar, { sourceDateEpoch: 1763683200 });
    expect((await verifyBundle(tar, trust)).code).toBe('PASS');
    const again = await exportBundle(first.bundle!.dir, join(fx.repo.root, '..', 'again.tar'), { sourceDateEpoch: 1763683200 });
    expect(again.sha256).toBe(ex.sha256);

    const entries = await bundleEntries(first.bundle!.dir);
    const evil = join(fx.repo.root, '..', 'evil.tar');
    const escape = `clawos-escape-${process.pid}-${Date.now()}`;
    await writeFile(evil, rawTar([...entries, { path: `../${escape}`, data: Buffer.from('x') }]));
    expect(await verifyBundle(evil, trust)).toEqual({ ok: false, code: 'PATH_UNSAFE', detail: `tar entry "../${escape}" contains ".."` });
    expect(existsSync(join(tmpdir(), escape))).toBe(false);

    const link = join(fx.repo.root, '..', 'link.tar');
    await writeFile(link, rawTar([...entries, { path: 'artifacts/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }]));
    expect(await verifyBundle(link, trust)).toEqual({ ok: false, code: 'PATH_UNSAFE', detail: 'tar entry "artifacts/passwd" is a symlink' });

    const d = await copy();
    await symlink('/etc/passwd', join(d, 'artifacts', 'passwd'));
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'PATH_UNSAFE', detail: 'artifacts/passwd is a symlink' });
  });

  it('a replayed bundle: REPLAY_DETECTED (its run_id is in the ledger, or its release is older than expected)', async () => {
    expect(await verifyBundle(first.bundle!.dir, trust, { ledger: new Set([first.runId]) })).toMatchObject({ code: 'REPLAY_DETECTED', detail: `run ${first.runId} is already in the ledger` });
    expect(await verifyBundle(first.bundle!.dir, trust, { minRelease: '0.2.0' })).toMatchObject({ code: 'REPLAY_DETECTED', detail: 'release 0.1.0-alpha is older than the expected 0.2.0' });
  });

  it('an unknown schema version: UNSUPPORTED_VERSION', async () => {
    const d = await copy();
    await resignManifest(d, release, (m: BundleManifest) => ({ ...m, version: 2 }));
    expect(await verifyBundle(d, trust)).toMatchObject({ code: 'UNSUPPORTED_VERSION', detail: `${MANIFEST_FILE}: version 2 is not supported (1)` });
  });

  it('the untouched bundle still verifies after all of that (the tampering touched only copies, never the store)', async () => {
    expect((await verifyBundle(first.bundle!.dir, trust)).code).toBe('PASS');
    for (const s of first.bundle!.subjects) expect((await lstat(join(fx.repo.buildDir, 'vault/store/sha256', s.sha256))).mode & 0o777).toBe(0o444);
  });
});
