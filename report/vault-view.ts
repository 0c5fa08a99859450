/**
 * The vault section of the report and the release's bundle check: the newest
 * signed bundle under <build>/vault/bundles/<run_id>/, verified with
 * verifyBundle against the trust file the caller gives. Without a trust file the
 * bundle is "not verified", never shown as good: the trust root is given to the
 * verifier, never taken from the build.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readBundleManifest } from '../vault/bundle.js';
import { loadTrust } from '../vault/keys.js';
import { verifyBundle } from '../vault/verify.js';
import { RUN_ID_PATTERN } from '../vault/run-vault.js';
import type { RecordedRun } from './recorded-results.js';
import { eventsOf } from '../vault/event-payloads.js';

export interface VaultView {
  state: 'verified' | 'failed' | 'not-verified' | 'no-bundle';
  headline: string;
  bundle: { run_id: string; dir: string; release: string | null; files: number | null } | null;
  code: string | null;
  detail: string | null;
  trust: string | null;
  /** Something else a reader should know (a newer run without a bundle …). */
  note: string | null;
}


/** Run ids that have a bundle directory, oldest first (run ids sort by time). */
export async function listBundles(buildDir: string): Promise<string[]> {
  const dir = join(buildDir, 'vault', 'bundles');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names.filter((x) => RUN_ID_PATTERN.test(x)).sort()) {
    if (await lstat(join(dir, n)).then((s) => s.isDirectory(), () => false)) out.push(n);
  }
  return out;
}

/** The newest bundle's run id, if any. */
export async function newestBundle(buildDir: string): Promise<string | undefined> {
  return (await listBundles(buildDir)).at(-1);
}

function bundleReason(run: RecordedRun | undefined): string | null {
  const b = run ? eventsOf(run.events, 'run-end')[0]?.payload.bundle : undefined;
  return typeof b === 'object' && b !== null && 'reason' in b && typeof b.reason === 'string' ? b.reason : null;
}

export async function vaultView(buildDir: string, runs: readonly RecordedRun[], trustFile: string | undefined, opts: { at?: Date } = {}): Promise<VaultView> {
  const id = await newestBundle(buildDir);
  const latest = runs.at(-1);
  if (!id) {
    const why = bundleReason(latest);
    return {
      state: 'no-bundle',
      headline: `no bundle: nothing signed in ${join(buildDir, 'vault', 'bundles')}`,
      bundle: null,
      code: null,
      detail: null,
      trust: trustFile ? resolve(trustFile) : null,
      note: latest ? `the latest run ${latest.run_id} ended ${why ? `without a bundle: ${why}` : latest.ended ? 'without a bundle' : 'without a run-end event (still running, or cut short)'}` : null,
    };
  }
  const dir = join(buildDir, 'vault', 'bundles', id);
  const manifest = await readBundleManifest(dir).catch(() => null);
  const bundle = { run_id: id, dir, release: typeof manifest?.release === 'string' ? manifest.release : null, files: Array.isArray(manifest?.files) ? manifest.files.length : null };
  const note = latest && latest.run_id !== id ? `the latest run ${latest.run_id} has no bundle${bundleReason(latest) ? ` (${bundleReason(latest)})` : ''}; this is the newest one` : null;
  if (!trustFile) {
    return {
      state: 'not-verified',
      headline: `not verified: no --trust given (bundle of run ${id} present, unchecked)`,
      bundle,
      code: null,
      detail: null,
      trust: null,
      note,
    };
  }
  const trustPath = resolve(trustFile);
  let trust;
  try {
    trust = await loadTrust(trustPath);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return {
      state: 'failed',
      headline: `not verified: the trust file cannot be used: ${(e as Error).message}`,
      bundle,
      code: typeof code === 'string' ? code : 'INVALID_SCHEMA',
      detail: (e as Error).message,
      trust: trustPath,
      note,
    };
  }
  const r = await verifyBundle(dir, trust, opts.at ? { at: opts.at } : {});
  if (r.ok) {
    return { state: 'verified', headline: `PASS: bundle of run ${id} verified with ${trustPath}`, bundle, code: r.code, detail: r.detail, trust: trustPath, note };
  }
  return { state: 'failed', headline: `FAIL ${r.code}: ${r.detail}`, bundle, code: r.code, detail: r.detail, trust: trustPath, note };
}
