/**
 * RFC 6962 §2.1 Merkle Tree Hash, by hand: merkletreejs has no leaf/node domain
 * separation, which lets an inner node pass as a leaf (second-preimage attack).
 *   MTH({})      = SHA-256()
 *   leaf         = SHA-256(0x00 || d)
 *   node         = SHA-256(0x01 || left || right)
 *   split at k   = the largest power of two < n
 * Inclusion proofs follow RFC 6962 §2.1.1 (PATH) and RFC 9162 §2.1.3.2 (verify).
 */
import { createHash } from 'node:crypto';

const LEAF = Buffer.from([0x00]);
const NODE = Buffer.from([0x01]);

export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF).update(data).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Root over already-computed leaf hashes (the leaves are hashed once, not per level). */
function rootOfHashes(h: Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 1) return h[lo]!;
  const k = splitPoint(n);
  return nodeHash(rootOfHashes(h, lo, lo + k), rootOfHashes(h, lo + k, hi));
}

/** MTH(D[n]) over the raw leaf data. */
export function merkleRoot(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  return rootOfHashes(leaves.map(leafHash), 0, leaves.length);
}

function path(h: Buffer[], m: number, lo: number, hi: number): Buffer[] {
  const n = hi - lo;
  if (n === 1) return [];
  const k = splitPoint(n);
  if (m < k) return [...path(h, m, lo, lo + k), rootOfHashes(h, lo + k, hi)];
  return [...path(h, m - k, lo + k, hi), rootOfHashes(h, lo, lo + k)];
}

/** PATH(m, D[n]): the audit path of leaf `index`, bottom-up. */
export function inclusionProof(leaves: readonly Uint8Array[], index: number): Buffer[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`inclusionProof: index ${index} outside a tree of ${leaves.length} leaves`);
  }
  return path(leaves.map(leafHash), index, 0, leaves.length);
}

/**
 * RFC 9162 §2.1.3.2: true when `proof` proves that the leaf with hash `leaf`
 * (i.e. leafHash(data)) sits at `index` in the tree of `treeSize` with `root`.
 */
export function verifyInclusion(leaf: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isInteger(index) || !Number.isInteger(treeSize) || index < 0 || index >= treeSize) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.compare(r, Buffer.from(root)) === 0;
}
