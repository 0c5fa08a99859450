import { describe, expect, it } from 'vitest';
import { inclusionProof, leafHash, merkleRoot, verifyInclusion } from './merkle.js';

// The 8 leaves and roots of certificate-transparency's merkle_tree_test.cc
// (also RFC 9162's reference vectors), copied by hand.
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) =>
  Buffer.from(h, 'hex'),
);
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// Audit paths from the same test file: [leaf index (0-based), tree size, path].
const PATHS: [number, number, string[]][] = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];

describe('RFC 6962 Merkle tree hash', () => {
  it('hashes the empty tree to SHA-256 of nothing', () => {
    expect(merkleRoot([]).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it.each(ROOTS.map((r, i) => [i + 1, r] as const))('root of the first %i CT leaves is %s', (n, root) => {
    expect(merkleRoot(LEAVES.slice(0, n)).toString('hex')).toBe(root);
  });

  it('uses domain separation: the leaf hash of "" is H(0x00)', () => {
    expect(leafHash(Buffer.alloc(0)).toString('hex')).toBe(ROOTS[0]);
  });

  it.each(PATHS)('inclusion proof of leaf %i in a tree of %i matches the CT vector and verifies', (index, size, want) => {
    const leaves = LEAVES.slice(0, size);
    const proof = inclusionProof(leaves, index);
    expect(proof.map((p) => p.toString('hex'))).toEqual(want);
    expect(verifyInclusion(leafHash(leaves[index]!), index, size, proof, merkleRoot(leaves))).toBe(true);
  });

  it('verifies every generated proof for every tree size up to 8, and refuses wrong ones', () => {
    for (let n = 1; n <= 8; n++) {
      const leaves = LEAVES.slice(0, n);
      const root = merkleRoot(leaves);
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(leaves, i);
        const lh = leafHash(leaves[i]!);
        expect(verifyInclusion(lh, i, n, proof, root)).toBe(true);
        if (n > 1) {
          expect(verifyInclusion(lh, (i + 1) % n, n, proof, root)).toBe(false);
          expect(verifyInclusion(leafHash(Buffer.from('x')), i, n, proof, root)).toBe(false);
        }
        expect(verifyInclusion(lh, i, n, [...proof, root], root)).toBe(false);
      }
    }
    expect(verifyInclusion(leafHash(LEAVES[0]!), 1, 1, [], merkleRoot(LEAVES.slice(0, 1)))).toBe(false);
  });
});
