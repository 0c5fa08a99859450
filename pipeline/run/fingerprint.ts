/**
 * A task instance's fingerprint: what its result depends on. Same fingerprint
 * and intact outputs = up to date. It covers the spec, the contents of its
 * inputs (and the step's implicit inputs), its frozen spec hashes, the outputs of
 * its dependencies, the versions of the tools it runs, and clawos-build's own step
 * version. The parts are kept so `explain` can say what changed.
 */
import { lstat, readFile, stat } from 'node:fs/promises';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { join } from 'node:path';
import { sha256Hex, sha256Path } from '../../lib/hash.js';
import type { HashCache } from '../../lib/hash-cache.js';
import { run } from '../../lib/proc.js';

// A type, not an interface: it is stored as a plain record (InstanceRecord.fingerprint_parts).
export type FingerprintParts = {
  spec: unknown;
  arch: unknown;
  step: { name: string; version: number } | null;
  inputs: Record<string, string>;
  frozen_specs: Record<string, string>;
  deps: Record<string, { status: string; outputs: Record<string, string> }>;
  tools: Record<string, string>;
  component: unknown;
  source_date_epoch: number;
  /** Under which mode the task runs: bwrap (the default) or off (--no-sandbox). */
  sandbox: 'bwrap' | 'off';
  /** A step that consumes locked packages (Step.lockedInputs): "name:arch" -> "version sha256" of the lock entries for its arch. */
  locked?: Record<string, string>;
  /** A step that signs modules (Step.moduleSigningKey): sha256 of the managed key's certificate, or null (a key made per build). */
  module_signing_cert?: string | null;
  /** A step that signs for Secure Boot (Step.secureBootKey): sha256 of the key dir's Secure Boot certificate, or null (none). */
  secureboot_cert?: string | null;
  /**
   * 'ccache': a step with Step.compilerCache ran with the cache on, whose objects are not always a plain build's
   * bytes. 'icecream' is only in records of runs before the icecream front (2026-12-06), when a kernel through
   * the cluster differed from a local one; explain still names that change.
   */
  compiled_by?: 'icecream' | 'ccache';
};

/** JSON with sorted keys, so equal values hash equally. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/** `clawos`: clawos-build's version, hashed but not kept in the recorded parts. */
export function fingerprintOf(parts: FingerprintParts & { clawos?: string }): string {
  return sha256Hex(stableJson(parts));
}

/** Content hash of a repo path (file or tree); "missing" if absent. Files go through the cache. */
export async function hashRepoPath(repoRoot: string, rel: string, cache: HashCache): Promise<string> {
  const abs = join(repoRoot, rel);
  try {
    const st = await lstat(abs);
    if (st.isFile()) return (await cache.file(abs)).sha256;
    return await sha256Path(abs);
  } catch {
    return 'missing';
  }
}

/**
 * Versions of Debian packages, asked of dpkg once per run, and remembered in a
 * cache file while dpkg's database (/var/lib/dpkg/status) is unchanged.
 */
export class ToolVersions {
  private versions = new Map<string, string>();
  constructor(
    private readonly cacheFile: string | null = null,
    private readonly dpkgStatus = '/var/lib/dpkg/status',
  ) {}
  async load(packages: Iterable<string>): Promise<void> {
    const want = [...new Set(packages)].filter((p) => !this.versions.has(p)).sort();
    if (!want.length) return;
    const stamp = await stat(this.dpkgStatus).then((s) => `${s.size}:${s.mtimeMs}`, () => null);
    if (this.cacheFile && stamp) {
      const cached = await readFile(this.cacheFile, 'utf8').then((t) => JSON.parse(t) as { stamp: string; versions: Record<string, string> }, () => null);
      if (cached?.stamp === stamp && want.every((p) => p in cached.versions)) {
        for (const p of want) this.versions.set(p, cached.versions[p]!);
        return;
      }
    }
    const r = await run(['dpkg-query', '-W', '-f', '${Package} ${Version} ${db:Status-Abbrev}\n', ...want], { captureStdout: true });
    for (const p of want) this.versions.set(p, 'not-installed');
    for (const line of r.stdout.split('\n')) {
      const [name, version, status] = line.split(' ');
      if (name && version && status?.startsWith('ii')) this.versions.set(name.replace(/:.*$/, ''), version);
    }
    if (this.cacheFile && stamp) await writeJsonAtomic(this.cacheFile, { stamp, versions: Object.fromEntries(this.versions) });
  }
  get(pkg: string): string {
    return this.versions.get(pkg) ?? 'unknown';
  }
}
