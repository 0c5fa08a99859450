/**
 * Verify step 6b: the bundle names the input lock its build fetched by
 * (inputs.lock.yaml, carried in the bundle), and every resolved input the
 * attestation lists agrees with it: each Debian package at its locked version
 * and sha256, the kernel source tarball at a sha256 the lock pins.
 */
import { parse } from 'yaml';
import { fail, type Fail } from './codes.js';
import type { Statement } from './attestation.js';

interface LockShape {
  debs?: { name?: unknown; arch?: unknown; version?: unknown; sha256?: unknown; files?: Record<string, unknown> }[];
}

export function checkInputLock(st: Statement, files: ReadonlyMap<string, { sha256: string }>, lockText: (path: string) => string): Fail | null {
  const deps = st.predicate.buildDefinition.resolvedDependencies;
  const lockDep = deps.find((d) => d.annotations?.['kind'] === 'input-lock');
  if (!lockDep?.name) return fail('FILE_MISSING', 'the attestation names no input lock (inputs.lock.yaml): the build was not fetched by a lock');
  const f = files.get(lockDep.name);
  if (!f) return fail('FILE_MISSING', `the input lock ${lockDep.name} is named by the attestation but not a file of the bundle`);
  if (f.sha256 !== lockDep.digest['sha256']) return fail('HASH_MISMATCH', `${lockDep.name}: attested sha256 ${String(lockDep.digest['sha256'])}, file ${f.sha256}`);
  let lock: LockShape;
  try {
    lock = parse(lockText(lockDep.name)) as LockShape;
  } catch (e) {
    return fail('INVALID_SCHEMA', `${lockDep.name}: ${(e as Error).message.split('\n')[0]}`);
  }
  const debs = Array.isArray(lock?.debs) ? lock.debs : [];
  for (const d of deps) {
    const a = d.annotations ?? {};
    if (a['kind'] === 'debian-package') {
      const hit = debs.find((x) => x.name === a['package'] && (x.arch === a['arch'] || x.arch === 'all'));
      if (!hit) return fail('HASH_MISMATCH', `${d.name}: ${String(a['package'])}:${String(a['arch'])} is not in ${lockDep.name}`);
      if (hit.version !== a['version'] || hit.sha256 !== d.digest['sha256']) {
        return fail('HASH_MISMATCH', `${d.name}: built with ${String(a['version'])} (sha256 ${String(d.digest['sha256'])}), ${lockDep.name} locks ${String(hit.version)} (sha256 ${String(hit.sha256)})`);
      }
    }
    if (a['kind'] === 'kernel-source') {
      const pinned = debs.some((x) => Object.values(x.files ?? {}).includes(d.digest['sha256']));
      if (!pinned) return fail('HASH_MISMATCH', `kernel source ${d.name} (sha256 ${String(d.digest['sha256'])}) is not a file ${lockDep.name} pins`);
    }
  }
  return null;
}
