/**
 * The vault manifest (first step of the vault): the sha256 of every recorded
 * output, sorted by path, replaced atomically. The signed attestation builds on it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../lib/atomic-write.js';

export interface ManifestEntry {
  /** Build-dir-relative path. */
  path: string;
  sha256: string;
  size: number;
  /** The task instance that produced it, e.g. "A-01@x86_64", or "gate:P1". */
  producer: string;
}

export interface VaultManifest {
  format: 'clawos-vault-manifest@1';
  updated_at: string;
  entries: ManifestEntry[];
}

export function manifestPath(buildDir: string): string {
  return join(buildDir, 'vault', 'manifest.json');
}

export async function readManifest(buildDir: string): Promise<VaultManifest> {
  try {
    return JSON.parse(await readFile(manifestPath(buildDir), 'utf8')) as VaultManifest;
  } catch {
    return { format: 'clawos-vault-manifest@1', updated_at: new Date(0).toISOString(), entries: [] };
  }
}

/** Replace every entry of `producer` with `entries`, keep the rest, sort, write atomically. */
export async function recordInManifest(buildDir: string, producer: string, entries: Omit<ManifestEntry, 'producer'>[]): Promise<VaultManifest> {
  const m = await readManifest(buildDir);
  const kept = m.entries.filter((e) => e.producer !== producer && !entries.some((n) => n.path === e.path));
  const all = [...kept, ...entries.map((e) => ({ ...e, producer }))].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const next: VaultManifest = { format: 'clawos-vault-manifest@1', updated_at: new Date().toISOString(), entries: all };
  await writeJsonAtomic(manifestPath(buildDir), next);
  return next;
}
