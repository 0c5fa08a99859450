/**
 * A test repository's spec freeze. Test repositories copy specs/ with the committed
 * record; when a branch changes a frozen spec (a new major version) before the
 * maintainers sign its new freeze, every run in such a copy would stop at the freeze
 * check. Then the copy is re-frozen with throwaway security and core keys, which
 * go into the copy's own trust file. The committed record itself is guarded by
 * test/vault-freeze-record.test.ts, which keeps failing until the real freeze is made.
 */
import { join } from 'node:path';
import { addTrustEntry, initKey } from '../../vault/keys.js';
import { checkFrozenFiles, freezeSpecs } from '../../vault/freeze-specs.js';

export async function refreezeIfStale(root: string): Promise<void> {
  if ((await checkFrozenFiles(root)).ok) return;
  const keyDir = join(root, '..', 'test-freeze-keys');
  for (const role of ['security', 'core'] as const) await addTrustEntry(join(keyDir, 'keys.json'), (await initKey(keyDir, role)).trustEntry);
  await freezeSpecs({ repoRoot: root, keyDir });
}
