/**
 * inputs.lock.yaml: every external input of a ClawOS build pinned by exact
 * identity (Debian package, architecture, version, and the sha256 of the .deb
 * as the signed archive index states it; for files the build uses directly,
 * their sha256 inside the package too). Builds fetch by the lock, never by
 * "whatever the mirror serves now", so the same commit builds the same ClawOS
 * on any machine, any day (as long as the mirror still serves the locked
 * versions).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../lib/hash.js';
import { formatDiagnostic, parseYaml, type Diagnostic } from '../../lib/yaml-source.js';
import { checkDataText, schemaAt } from '../../lib/data.js';
import { UserError } from '../../lib/errors.js';

export const LOCK_FILE = 'inputs.lock.yaml';
export const LOCK_SCHEMA = 'specs/schemas/inputs-lock.schema.json';

export interface LockedDeb {
  name: string;
  /** Debian architecture of the package: amd64, arm64 or all. */
  arch: string;
  version: string;
  /** sha256 of the .deb file, as the archive's Packages index states it. */
  sha256: string;
  size: number;
  /** What the build uses it for (one line, for reviewers). */
  why: string;
  /** Package-relative paths of members the build uses directly, with their sha256. */
  files?: Record<string, string>;
  /** A meta package that named this one when it was locked (linux-image-amd64 for G-08's baseline). */
  alias?: string;
}

/** A Debian source package (the Buildroot backend's offline sources), pinned by its .dsc. */
export interface LockedSource {
  name: string;
  version: string;
  /** sha256 of the .dsc, as the archive's signed Sources index states it; dpkg-source checks the rest against it. */
  dsc_sha256: string;
  why: string;
}

export interface InputLock {
  lock_version: 1;
  /** The Debian release the versions come from (informational). */
  distribution: string;
  debs: LockedDeb[];
  /** Debian source packages (optional section). */
  source_packages?: LockedSource[];
  /** Host tool packages (compilers, QEMU, xorriso ...) as they were when the lock was made: doctor warns on drift. */
  host_tools: Record<string, string>;
}

export interface LoadedLock {
  lock: InputLock;
  /** sha256 of the lock file's bytes (what the bundle names). */
  sha256: string;
  /** Repo-relative path. */
  file: string;
}

/** "name:arch", the key an entry is found by. */
export function lockKey(name: string, arch: string): string {
  return `${name}:${arch}`;
}

/** Load and schema-check the lock. Throws UserError with file:line:col diagnostics. */
export async function loadLock(repoRoot: string, file: string = LOCK_FILE): Promise<LoadedLock> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(repoRoot, file));
  } catch {
    throw new UserError(`${file}: not found in ${repoRoot}; make it with \`clawos-build lock --update\``);
  }
  const diags = await lockDiagnostics(repoRoot, bytes.toString('utf8'), file);
  if (diags.length) throw new UserError(diags.map(formatDiagnostic).join('\n'));
  const lock = parseYaml(bytes.toString('utf8'), file).value as InputLock;
  return { lock, sha256: sha256Hex(bytes), file };
}

/** What `validate` reports about the lock: YAML and schema problems, duplicate keys. */
export async function lockDiagnostics(repoRoot: string, text: string, file: string = LOCK_FILE): Promise<Diagnostic[]> {
  const c = checkDataText<InputLock>(text, file, schemaAt(join(repoRoot, LOCK_SCHEMA)));
  if (c.diagnostics.length) return c.diagnostics;
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const [i, d] of c.value.debs.entries()) {
    const k = lockKey(d.name, d.arch);
    if (seen.has(k)) out.push({ ...c.src.locate(['debs', i, 'name']), message: `${k} is locked twice` });
    seen.add(k);
  }
  return out;
}

/**
 * The locked entry for a package of the target arch: NAME:<debian arch>, else
 * NAME:all; a meta package name finds the entry that records it as `alias`.
 */
export function findLocked(lock: InputLock, name: string, debianArch: string): LockedDeb | undefined {
  const exact = (n: string, a: string) => lock.debs.find((d) => d.name === n && d.arch === a);
  return exact(name, debianArch) ?? exact(name, 'all') ?? lock.debs.find((d) => d.alias === name && (d.arch === debianArch || d.arch === 'all'));
}

/** findLocked, or a UserError that says how to add the package to the lock. */
export function requireLocked(loaded: LoadedLock, name: string, debianArch: string): LockedDeb {
  const e = findLocked(loaded.lock, name, debianArch);
  if (!e) {
    throw new UserError(`${loaded.file}: ${name}:${debianArch} is not locked; run \`clawos-build lock --update ${name}\` and commit ${loaded.file}`);
  }
  return e;
}

/** `apt-get download` spelling of an exact package version. */
export function aptSpec(d: Pick<LockedDeb, 'name' | 'arch' | 'version'>): string {
  return d.arch === 'all' ? `${d.name}=${d.version}` : `${d.name}:${d.arch}=${d.version}`;
}

/** The lock as its YAML text: stable order, one package per block, comments for reviewers. */
export function renderLock(lock: InputLock): string {
  const q = (s: string) => (/^[A-Za-z0-9._/+-][A-Za-z0-9._/+:~ -]*$/.test(s) && !/^[0-9.]+$/.test(s) && !s.includes(': ') ? s : JSON.stringify(s));
  const lines = [
    '# Every external input of a ClawOS build, pinned by exact identity (docs/locked-inputs.md).',
    '# The build fetches these versions with `apt-get download NAME:ARCH=VERSION` into the shared',
    '# download cache and refuses a .deb (or a file in it) whose sha256 differs from this file.',
    '#   clawos-build lock                  what the mirror would change (exit 1 if anything)',
    '#   clawos-build lock --update [NAME]  re-resolve and rewrite this file, printing the diff',
    `lock_version: ${lock.lock_version}`,
    `distribution: ${q(lock.distribution)}`,
    'debs:',
  ];
  for (const d of sortDebs(lock.debs)) {
    lines.push(`  - name: ${q(d.name)}`, `    arch: ${d.arch}`, `    version: ${q(d.version)}`, `    sha256: ${d.sha256}`, `    size: ${d.size}`, `    why: ${q(d.why)}`);
    if (d.alias) lines.push(`    alias: ${q(d.alias)}`);
    const files = Object.entries(d.files ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    if (files.length) {
      lines.push('    files:');
      for (const [p, h] of files) lines.push(`      ${q(p)}: ${h}`);
    }
  }
  if (lock.source_packages?.length) {
    lines.push('# Debian source packages (the Buildroot backend builds from them, Debian patches applied): the .dsc pins the rest.', 'source_packages:');
    for (const x of [...lock.source_packages].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      lines.push(`  - name: ${q(x.name)}`, `    version: ${q(x.version)}`, `    dsc_sha256: ${x.dsc_sha256}`, `    why: ${q(x.why)}`);
    }
  }
  const tools = Object.keys(lock.host_tools).length;
  lines.push('# Host tools as they were when the lock was made; `clawos-build doctor` warns when they differ.', tools ? 'host_tools:' : 'host_tools: {}');
  for (const [p, v] of Object.entries(lock.host_tools).sort(([a], [b]) => (a < b ? -1 : 1))) lines.push(`  ${q(p)}: ${q(v)}`);
  return lines.join('\n') + '\n';
}

function sortDebs(debs: LockedDeb[]): LockedDeb[] {
  return [...debs].sort((a, b) => (a.name === b.name ? (a.arch < b.arch ? -1 : 1) : a.name < b.name ? -1 : 1));
}

export interface LockChange {
  key: string;
  locked: string | null;
  available: string | null;
}

/** Per package: the locked and the newly resolved version, where they differ (version or hash). */
export function diffLock(old: InputLock, next: InputLock): LockChange[] {
  const a = new Map(old.debs.map((d) => [lockKey(d.name, d.arch), d]));
  const b = new Map(next.debs.map((d) => [lockKey(d.name, d.arch), d]));
  const out: LockChange[] = [];
  for (const k of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(k);
    const y = b.get(k);
    if (x && y && x.version === y.version && x.sha256 === y.sha256 && JSON.stringify(x.files ?? {}) === JSON.stringify(y.files ?? {})) continue;
    out.push({ key: k, locked: x ? x.version : null, available: y ? y.version : null });
  }
  return out;
}
