/**
 * The committed freeze record (specs/p1/freeze.dsse.json) is what every run checks
 * frozen_spec_deps against: it must verify with the committed trust root and match
 * each P1 spec as it is, or A-01 and the other consumers of a frozen spec are refused.
 * After a reviewed change: `clawos-build spec freeze` with a security key and a core key.
 */
import { describe, expect, it } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { currentP1Specs, loadFreezeState } from '../vault/freeze-specs.js';

describe('the committed P1 freeze record', () => {
  it('is signed by a security key and a core key of specs/trust/keys.json and matches every specs/p1/*.yaml', async () => {
    const st = await loadFreezeState(repoRootDir());
    if (!st.ok) throw new Error(st.detail);
    const now = (await currentP1Specs(repoRootDir())).map((s) => ({ path: s.path, sha256: s.sha256, version: s.version }));
    expect(st.payload.specs).toEqual(now);
  });
});
