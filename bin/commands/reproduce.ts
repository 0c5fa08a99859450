/**
 * `clawos-build reproduce BUNDLE`: rebuild what a release bundle attests, from the
 * commit, lock and SOURCE_DATE_EPOCH it records, in a fresh folder, and compare
 * every attested subject's sha256. Build outputs (kernels, initramfs images,
 * ISOs, SBOMs) must come out byte for byte the same; run evidence (boot logs,
 * timings) is compared and listed but cannot be expected to. Each differing
 * output gets a diffoscope report. With --reuse-kernel DIR the kernels of an
 * earlier build are taken over (when their fingerprints match here) and
 * everything else is rebuilt: the cheaper check CI runs every time.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InfraError, UserError } from '../../lib/errors.js';
import { formatDuration } from '../../lib/format.js';
import { run as runProcess } from '../../lib/proc.js';
import { findModuleSigningKey, MAKE_MODULE_SIGNING_KEY } from '../../pipeline/kernel/module-signing-key.js';
import { findSecureBootKey, loadTestCerts } from '../../pipeline/boot/secureboot-key.js';
import { bundleArtifact, compareSubjects, readBundleBuild, reusedOutputs, seedInstances, type SeededInstance, type SubjectComparison } from '../../pipeline/run/reproduce.js';
import { loadValidCatalog, sourceRevision } from '../../pipeline/run/session.js';
import { defaultKeyDir, defaultTrustFile } from '../../vault/key-dir.js';
import { loadTrust } from '../../vault/keys.js';
import { verifyBundle } from '../../vault/verify.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

interface ReproduceArgs {
  positionals: [string];
  trust?: string;
  keyDir?: string;
  out?: string;
  reuseKernel?: string;
  jobs: number;
  json: boolean;
}

/** The steps --reuse-kernel takes over from the earlier build. */
const REUSED_STEPS = ['kernel-build'];

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as ReproduceArgs;
  const started = Date.now();
  const say = (s: string) => {
    if (!a.json) io.printErr(`${s}\n`);
  };
  const bundle = resolve(a.positionals[0]);
  if (!existsSync(join(bundle, 'attestation.dsse.json'))) {
    throw new UserError(`${a.positionals[0]}: not a bundle directory (no attestation.dsse.json)`, 'give the bundle directory, e.g. build/vault/bundles/<run id>; unpack an exported tar first');
  }
  const keyDir = resolve(a.keyDir ?? defaultKeyDir(io.env));
  const trustFile = resolve(a.trust ?? defaultTrustFile(keyDir));

  // Only a bundle that verifies says what it was built from.
  const v = await verifyBundle(bundle, await loadTrust(trustFile));
  if (!v.ok) {
    if (a.json) printJson(io, { ok: false, verdict: 'NOT-VERIFIED', code: v.code, detail: v.detail });
    else io.printErr(`clawos-build: reproduce: the bundle does not verify (${v.code}): ${v.detail}\n`);
    return EXIT.failed;
  }
  const b = await readBundleBuild(bundle);

  // The same sources: the commit the bundle names, with nothing changed.
  if (!b.source) throw new UserError(`the bundle ${b.runId} names no source commit (it was built outside git, or before clawos-build recorded one): there is nothing to check out and rebuild`);
  if (b.source.dirty) throw new UserError(`the bundle ${b.runId} was built from ${b.source.commit} with uncommitted changes: what it was built from is in no commit, so it cannot be rebuilt`);
  const here = await sourceRevision(io.repoRoot);
  if (!here || here.commit !== b.source.commit || here.dirty) {
    throw new UserError(
      `this checkout is ${here ? `at ${here.commit.slice(0, 12)}${here.dirty ? ' with uncommitted changes' : ''}` : 'not a git repository'}; the bundle was built from ${b.source.commit}`,
      `git stash; git checkout ${b.source.commit}; then run reproduce again`,
    );
  }
  const lockHere = await readFile(join(io.repoRoot, 'inputs.lock.yaml'));
  const lockThere = await readFile(join(bundle, 'inputs.lock.yaml')).catch(() => null);
  if (!lockThere || !lockThere.equals(lockHere)) throw new UserError(`the bundle's inputs.lock.yaml ${lockThere ? 'differs from' : 'is missing; the checkout has'} ${join(io.repoRoot, 'inputs.lock.yaml')}`);

  // The same module-signing key, or the kernels cannot come out the same.
  if (!a.reuseKernel) {
    if (b.moduleSigningCert == null) {
      throw new UserError(
        `the bundle's kernels were signed with module-signing keys made in that build (no managed key): they cannot be rebuilt bit for bit`,
        'reproduce --reuse-kernel BUILD_DIR checks everything but the kernels',
      );
    }
    const key = await findModuleSigningKey(keyDir);
    if (!key) throw new InfraError(`no module-signing key in ${keyDir}: the bundle's kernels carry certificate sha256 ${b.moduleSigningCert}`, `put that key there as module-signing.pem (mode 0600); ${MAKE_MODULE_SIGNING_KEY} would make a different one`);
    if (key.certSha256 !== b.moduleSigningCert) {
      throw new InfraError(`${key.path} has certificate sha256 ${key.certSha256}, but the bundle's kernels carry ${b.moduleSigningCert}: a different key gives different kernels`, 'use the key the release was built with (--key-dir DIR)');
    }
  }

  // G-05 signs the UKIs again in either mode: with another Secure Boot key they cannot come out the same.
  if (typeof b.secureBootCert === 'string') {
    const sb = await findSecureBootKey(keyDir, await loadTestCerts(io.repoRoot));
    if (!sb) throw new InfraError(`no Secure Boot key in ${keyDir}: the bundle's UKIs are signed for certificate sha256 ${b.secureBootCert}`, 'put that key there as secureboot.key and secureboot.crt (clawos-build keys init --role secureboot --import KEY --cert CERT)');
    if (sb.certSha256 !== b.secureBootCert) {
      throw new InfraError(`${sb.certPath} has sha256 ${sb.certSha256}, but the bundle's UKIs are signed for ${b.secureBootCert}: a different key gives different UKIs`, 'use the key the release was built with (--key-dir DIR)');
    }
  }

  const out = resolve(a.out ?? `build-reproduce-${b.runId}`);
  if (existsSync(out) && (await readdir(out)).length > 0) throw new UserError(`${out} is not empty: reproduce rebuilds in a fresh folder`, 'give another with --out DIR, or remove it');
  const buildDir = join(out, 'build');
  await mkdir(buildDir, { recursive: true });

  let seededInstances: SeededInstance[] = [];
  if (a.reuseKernel) {
    const catalog = await loadValidCatalog(io.repoRoot);
    seededInstances = await seedInstances(resolve(a.reuseKernel), buildDir, catalog, REUSED_STEPS, b.arches);
    say(`reproduce: kernels taken over from ${resolve(a.reuseKernel)} (${seededInstances.map((s) => s.id).join(', ')}); everything else is rebuilt`);
  }
  say(`reproduce: rebuilding bundle ${b.runId} (commit ${b.source.commit.slice(0, 12)}, SOURCE_DATE_EPOCH ${b.sourceDateEpoch}, ${b.arches.join(' + ')}) in ${buildDir}`);
  // Every object compiled again: through the compiler cache they could be the first build's, and prove nothing.
  const argv = [process.execPath, join(io.repoRoot, 'bin', 'clawos-build.js'), 'all', '--build-dir', buildDir, '--arch', b.arches.join(','), '--jobs', String(a.jobs), '--no-compiler-cache'];
  const r = await runProcess(argv, {
    env: { SOURCE_DATE_EPOCH: String(b.sourceDateEpoch), CLAWOS_KEY_DIR: keyDir },
    sink: (stream, line) => {
      if (stream !== 'meta') say(`  ${line}`);
    },
    tailLines: 20,
  });
  if (r.spawnError) throw new InfraError(`could not start the rebuild: ${r.spawnError}`);

  // Outputs the rebuild took over are not evidence of anything: named apart. A seeded
  // instance the rebuild ran again (its fingerprint differed here) was rebuilt: it counts.
  let reusedPaths = new Set<string>();
  let seeded: string[] = [];
  if (seededInstances.length) {
    const { StateStore } = await import('../../pipeline/run/state.js');
    const st = await StateStore.open(buildDir);
    reusedPaths = reusedOutputs(seededInstances, (id) => st.instance(id));
    seeded = seededInstances.filter((s) => Object.keys(s.record.outputs).some((p) => reusedPaths.has(p))).map((s) => s.id);
  }
  const cmp = await compareSubjects(b.subjects, buildDir, reusedPaths);
  const outputs = cmp.filter((c) => c.role === 'output' && !c.reused);
  const differing = outputs.filter((c) => !c.same);

  // A diffoscope report for each output that differs.
  const reports = new Map<string, string>();
  if (differing.length) {
    const dir = join(out, 'diffoscope');
    await mkdir(dir, { recursive: true });
    for (const c of differing.filter((d) => d.rebuilt)) {
      const file = join(dir, `${c.path.replace(/\//g, '__')}.txt`);
      const d = await runProcess(['diffoscope', '--no-progress', '--text', file, bundleArtifact(bundle, c.path), join(buildDir, c.path)], { timeoutMs: 20 * 60_000, tailLines: 5 });
      reports.set(c.path, d.spawnError ? `diffoscope not run: ${d.spawnError} (apt-get install diffoscope-minimal)` : file);
    }
  }

  const verdict = r.exitCode === 0 && differing.length === 0 && outputs.length > 0 ? 'PASS' : 'FAIL';
  const doc = {
    ok: verdict === 'PASS',
    verdict,
    bundle,
    run_id: b.runId,
    commit: b.source.commit,
    arches: b.arches,
    rebuilt_in: buildDir,
    rebuild_exit_code: r.exitCode,
    duration_ms: Date.now() - started,
    reused: seeded,
    subjects: cmp.map((c) => ({ ...c, ...(reports.has(c.path) ? { diffoscope: reports.get(c.path) } : {}) })),
  };
  await writeFile(join(out, 'reproduce.json'), JSON.stringify(doc, null, 2) + '\n');
  if (a.json) printJson(io, doc);
  else io.print(summary(doc.subjects, verdict, r.exitCode, seeded, out, Date.now() - started));
  return verdict === 'PASS' ? EXIT.ok : EXIT.failed;
}

function summary(cmp: (SubjectComparison & { diffoscope?: string })[], verdict: string, rebuildExit: number | null, seeded: string[], out: string, ms: number): string {
  const lines: string[] = [];
  const outputs = cmp.filter((c) => c.role === 'output');
  const byKind = (cs: SubjectComparison[]) => {
    const kinds = new Map<string, number>();
    for (const c of cs) kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
    return [...kinds].map(([k, n]) => `${k} ${n}`).join(', ');
  };
  for (const c of outputs) {
    const state = c.reused ? 'REUSED   ' : c.same ? 'IDENTICAL' : c.rebuilt ? 'DIFFERS  ' : 'MISSING  ';
    lines.push(`${state} ${c.kind.padEnd(9)} ${c.path}  ${c.sha256.slice(0, 16)}${c.same || c.reused ? '' : ` -> ${c.rebuilt ? c.rebuilt.slice(0, 16) : 'not rebuilt'}`}`);
    if (c.diffoscope) lines.push(`          diffoscope: ${c.diffoscope}`);
  }
  const checked = outputs.filter((c) => !c.reused);
  const same = checked.filter((c) => c.same);
  const evidence = cmp.filter((c) => c.role === 'evidence');
  lines.push(
    `reproduce: ${verdict}: ${same.length} of ${checked.length} rebuilt outputs identical (${byKind(checked)})` +
      (seeded.length ? `; ${outputs.length - checked.length} taken over, not rebuilt (the results of ${seeded.join(', ')})` : '') +
      `; run evidence: ${evidence.filter((c) => c.same).length} of ${evidence.length} reports identical (boot logs and timings are not expected to be)` +
      `; in ${formatDuration(ms)}`,
  );
  if (rebuildExit !== 0) lines.push(`reproduce: the rebuild itself failed (exit ${rebuildExit}); its logs are in ${join(out, 'build', 'logs')}`);
  lines.push(`report: ${join(out, 'reproduce.json')}`);
  return lines.join('\n') + '\n';
}
