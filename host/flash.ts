/**
 * `clawos-build flash ISO DEVICE`: write a vouched-for ISO to a whole disk and
 * prove it landed. In order:
 *  1. vouch: the ISO's sha256 must match a signed bundle verified against the
 *     trusted keys (--bundle + --trust), an explicit --sha256, or the sha256 the
 *     build recorded in <build>/vault/manifest.json; with none of them, refuse;
 *  2. inspect the target through /sys and /proc (roots injectable for tests):
 *     refuse a partition, the disk holding /, anything mounted, swapped on or
 *     held (dm, md, LVM), a read-only or too small device, and a regular file
 *     unless --allow-file;
 *  3. confirm: --yes, or the device name typed at a terminal;
 *  4. write in chunks, opened O_EXCL (the kernel refuses a busy block device),
 *     hashing what is read from the ISO (it must still be the vouched bytes),
 *     fdatasync every few chunks so the progress shown is what reached the
 *     device, fsync at the end;
 *  5. drop the device's buffer cache (blockdev --flushbufs) and read the
 *     written length back: its sha256 must equal the ISO's, else the first
 *     differing offset is reported.
 * O_DIRECT is not used: it needs buffers aligned to the logical block size,
 * which Node's allocator does not promise; bounded dirty data plus a flushed
 * readback gives the same assurance.
 */
import type { Runner } from '../lib/proc.js';
import { constants, type Stats } from 'node:fs';
import { mkdtemp, open, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { UserError } from '../lib/errors.js';
import { sha256File } from '../lib/hash.js';
import { run as procRun, type RunOptions, type RunResult } from '../lib/proc.js';
import { verifyBundle } from '../vault/verify.js';
import { readBundleManifest } from '../vault/bundle.js';
import { loadTrust } from '../vault/keys.js';
import { extractTarSafely } from '../vault/tar-read.js';
import { readManifest, manifestPath } from '../vault/manifest.js';
import { AREA_BYTES, writeResultsArea } from './results-area.js';

export type { Runner } from '../lib/proc.js';

/** Where /sys and /proc are (tests pass a fake tree). */
export interface HostRoots {
  sys: string;
  proc: string;
}
export const REAL_HOST: HostRoots = { sys: '/sys', proc: '/proc' };

export interface TargetStat {
  kind: 'block' | 'file' | 'missing' | 'other';
  major?: number;
  minor?: number;
  size?: number;
  /** "dev:ino" of a regular file, to catch flashing the ISO onto itself. */
  inode?: string;
}

export interface Vouch {
  source: 'bundle' | 'sha256' | 'manifest';
  /** One line saying what vouched, e.g. the bundle's run and release. */
  detail: string;
}

export interface TargetInfo {
  path: string;
  kind: 'block' | 'file';
  /** Kernel name (sda, loop0) for a block device. */
  name: string | null;
  size_bytes: number | null;
  model: string | null;
  removable: boolean | null;
  /** One line a person reads before confirming. */
  description: string;
}

export type FlashEvent =
  | { event: 'verified'; iso: string; size: number; sha256: string; vouched_by: Vouch[] }
  | { event: 'target'; target: TargetInfo }
  | { event: 'progress'; phase: 'write' | 'readback'; bytes: number; total: number; elapsed_ms: number; bytes_per_s: number; eta_s: number | null }
  | { event: 'flushed'; how: string }
  | { event: 'results-area'; offset: number; bytes: number }
  | { event: 'note'; message: string };

export type FlashFailure = 'iso-unverified' | 'iso-changed' | 'readback-mismatch';

export interface FlashResult {
  ok: boolean;
  status: 'PASS' | 'FAIL';
  reason?: FlashFailure;
  message: string;
  iso: { path: string; size: number; sha256: string };
  vouched_by: Vouch[];
  target: TargetInfo | null;
  written_bytes: number;
  write_ms: number;
  readback: { sha256: string; first_difference: number | null; source: 'device' | 'page cache' } | null;
  /** The empty results area written after the ISO (host/results-area.ts), or null. */
  results_area: { offset: number; bytes: number } | null;
}

export interface FlashOptions {
  iso: string;
  device: string;
  buildDir: string;
  sha256?: string;
  bundle?: string;
  trust?: string;
  allowFile?: boolean;
  yes?: boolean;
  /** Write the empty results area at the end of the target (default true; issue 15). */
  resultsArea?: boolean;
  /** Ask at a terminal; resolves to what was typed, or null when there is no terminal. */
  confirm?: (question: string) => Promise<string | null>;
  host?: HostRoots;
  /** How the target looks (tests describe fake block devices); defaults to stat(). */
  statTarget?: (path: string) => Promise<TargetStat>;
  runner?: Runner;
  chunkBytes?: number;
  /** fdatasync after this many bytes (bounds what the progress counts but the device has not got). */
  syncEveryBytes?: number;
  onEvent?: (e: FlashEvent) => void;
  hooks?: {
    /** Between the final fsync and the readback (tests corrupt the target here). */
    beforeReadback?: (target: string) => Promise<void>;
  };
}

const MiB = 1024 * 1024;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

// ------------------------------------------------------------------ vouching

const HEX64 = /^[0-9a-f]{64}$/;

async function vouchByBundle(bundle: string, trustFile: string, isoSha: string): Promise<{ ok: true; vouch: Vouch } | { ok: false; message: string }> {
  let trust;
  try {
    trust = await loadTrust(trustFile);
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new UserError(`--trust ${trustFile}: ${code ? `${code}: ` : ''}${(err as Error).message}`);
  }
  let dir = bundle;
  let cleanup: string | null = null;
  try {
    const st = await stat(bundle).catch(() => null);
    if (!st) throw new UserError(`--bundle ${bundle} does not exist`);
    if (st.isFile()) {
      // Verify and read the manifest from one extraction, so both see the same bytes.
      cleanup = await mkdtemp(join(tmpdir(), 'clawos-flash-bundle-'));
      const bad = await extractTarSafely(bundle, cleanup);
      if (bad) return { ok: false, message: `bundle ${bundle} failed verification: ${bad.code}: ${bad.detail}` };
      dir = cleanup;
    }
    const v = await verifyBundle(dir, trust);
    if (!v.ok) return { ok: false, message: `bundle ${bundle} failed verification: ${v.code}: ${v.detail}` };
    const m = await readBundleManifest(dir);
    const hit = m.files.find((f) => f.sha256 === isoSha);
    if (!hit) return { ok: false, message: `the ISO (sha256 ${isoSha}) is not among the ${m.files.length} files of bundle ${bundle} (run ${m.run_id}, release ${m.release})` };
    return { ok: true, vouch: { source: 'bundle', detail: `signed bundle ${bundle}: run ${m.run_id}, release ${m.release}, as ${hit.path}` } };
  } finally {
    if (cleanup) await rm(cleanup, { recursive: true, force: true });
  }
}

async function vouchByManifest(buildDir: string, iso: string, isoSha: string): Promise<{ ok: true; vouch: Vouch } | { ok: false; message: string } | null> {
  const m = await readManifest(buildDir);
  if (!m.entries.length) return null;
  const rel = relative(buildDir, iso);
  const inside = rel && !rel.startsWith('..') && !rel.startsWith(sep);
  const byPath = inside ? m.entries.find((e) => e.path === rel) : undefined;
  const where = manifestPath(buildDir);
  if (byPath) {
    if (byPath.sha256 !== isoSha) {
      return { ok: false, message: `the ISO changed since the build recorded it: sha256 ${isoSha}, ${where} says ${byPath.sha256} for ${rel}` };
    }
    return { ok: true, vouch: { source: 'manifest', detail: `unsigned build record ${where}: ${rel} from ${byPath.producer}` } };
  }
  const bySha = m.entries.find((e) => e.sha256 === isoSha);
  if (bySha) return { ok: true, vouch: { source: 'manifest', detail: `unsigned build record ${where}: same bytes as ${bySha.path} from ${bySha.producer}` } };
  return null;
}

/**
 * Check the ISO against everything given (each must agree); with nothing given,
 * against the build's manifest. Returns the vouches, or a failure message.
 */
export async function vouchForIso(
  o: Pick<FlashOptions, 'bundle' | 'trust' | 'sha256' | 'buildDir'>,
  iso: string,
  isoSha: string,
): Promise<{ ok: true; vouches: Vouch[] } | { ok: false; message: string }> {
  const vouches: Vouch[] = [];
  if (o.trust && !o.bundle) throw new UserError('--trust goes with --bundle DIR|TAR (the signed bundle to check the ISO against)');
  if (o.bundle) {
    if (!o.trust) throw new UserError('--bundle needs --trust FILE: the trusted keys (keys.json) to verify it with');
    const b = await vouchByBundle(o.bundle, o.trust, isoSha);
    if (!b.ok) return b;
    vouches.push(b.vouch);
  }
  if (o.sha256 !== undefined) {
    const want = o.sha256.toLowerCase();
    if (!HEX64.test(want)) throw new UserError(`--sha256 takes 64 hex digits, not "${o.sha256}"`);
    if (want !== isoSha) return { ok: false, message: `the ISO's sha256 is ${isoSha}, not the ${want} given with --sha256` };
    vouches.push({ source: 'sha256', detail: `--sha256 ${want}` });
  }
  if (!vouches.length) {
    const m = await vouchByManifest(resolve(o.buildDir), iso, isoSha);
    if (m && !m.ok) return m;
    if (m) vouches.push(m.vouch);
  }
  if (!vouches.length) {
    throw new UserError(
      `nothing vouches for ${iso} (sha256 ${isoSha}): it is not recorded in ${manifestPath(resolve(o.buildDir))}, and neither --bundle nor --sha256 was given`,
      'pass --bundle DIR --trust keys.json (a signed bundle that lists the ISO), or --sha256 HEX, or flash an ISO this build recorded (--build-dir)',
    );
  }
  return { ok: true, vouches };
}

// ------------------------------------------------------------------ target inspection

export async function statTarget(path: string): Promise<TargetStat> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw new UserError(`${path}: ${(err as Error).message}`);
  }
  if (st.isBlockDevice()) {
    // glibc's dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
    const r = st.rdev;
    const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
    const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
    return { kind: 'block', major, minor };
  }
  if (st.isFile()) return { kind: 'file', size: Number(st.size), inode: `${st.dev}:${st.ino}` };
  return { kind: 'other' };
}

async function readTrim(p: string): Promise<string | null> {
  try {
    return (await readFile(p, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function listDir(p: string): Promise<string[]> {
  try {
    return (await readdir(p)).sort();
  } catch {
    return [];
  }
}

export interface Mount {
  devno: string;
  mountPoint: string;
  fstype: string;
  source: string;
}

/** /proc/self/mountinfo: "id parent major:minor root mountpoint opts [tags] - fstype source superopts". */
export function parseMountinfo(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    const dash = f.indexOf('-');
    if (f.length < 7 || dash < 6) continue;
    out.push({ devno: f[2]!, mountPoint: unescape(f[4]!), fstype: f[dash + 1] ?? '', source: unescape(f[dash + 2] ?? '') });
  }
  return out;
}

interface BlockNode {
  name: string;
  devno: string;
  dir: string;
}

/** The sysfs directory of a block device number, following /sys/dev/block/M:m. */
async function nodeOf(host: HostRoots, devno: string): Promise<BlockNode | null> {
  try {
    const dir = await realpath(join(host.sys, 'dev', 'block', devno));
    return { name: basename(dir), devno, dir };
  } catch {
    return null;
  }
}

async function nodeOfDir(dir: string): Promise<BlockNode | null> {
  const devno = await readTrim(join(dir, 'dev'));
  return devno ? { name: basename(dir), devno, dir } : null;
}

async function partitionNumber(n: BlockNode): Promise<number | null> {
  const p = await readTrim(join(n.dir, 'partition'));
  return p === null ? null : Number(p);
}

async function parentDisk(n: BlockNode): Promise<BlockNode | null> {
  return (await partitionNumber(n)) === null ? null : nodeOfDir(dirname(n.dir));
}

async function partitionsOf(n: BlockNode): Promise<BlockNode[]> {
  const out: BlockNode[] = [];
  for (const e of await listDir(n.dir)) {
    if ((await readTrim(join(n.dir, e, 'partition'))) === null) continue;
    const p = await nodeOfDir(join(n.dir, e));
    if (p) out.push(p);
  }
  return out;
}

/** Every block device the root filesystem lives on: its device, the disk of a partition, what a dm/md device sits on. */
async function rootDevices(host: HostRoots, mounts: Mount[]): Promise<{ rootName: string; nodes: BlockNode[] } | null> {
  const root = [...mounts].reverse().find((m) => m.mountPoint === '/');
  if (!root) return null;
  let start = await nodeOf(host, root.devno);
  // btrfs and friends report an anonymous 0:N; the mount source names the device.
  if (!start && root.source.startsWith('/dev/')) {
    const devno = await readTrim(join(host.sys, 'class', 'block', basename(root.source), 'dev'));
    if (devno) start = await nodeOf(host, devno);
  }
  if (!start) return null;
  const seen = new Map<string, BlockNode>();
  const todo = [start];
  while (todo.length) {
    const n = todo.pop()!;
    if (seen.has(n.devno)) continue;
    seen.set(n.devno, n);
    const parent = await parentDisk(n);
    if (parent) todo.push(parent);
    for (const s of await listDir(join(n.dir, 'slaves'))) {
      const sn = await nodeOfDir(await realpath(join(n.dir, 'slaves', s)).catch(() => join(n.dir, 'slaves', s)));
      if (sn) todo.push(sn);
    }
  }
  return { rootName: start.name, nodes: [...seen.values()] };
}

function mountLabel(m: Mount): string {
  return `${m.mountPoint} (${m.fstype})`;
}

/**
 * Look at a target and refuse it with a UserError when writing it would be
 * wrong. Reads only; nothing is opened for writing here.
 */
export async function inspectTarget(
  device: string,
  isoSize: number,
  o: { allowFile?: boolean; host?: HostRoots; statTarget?: (p: string) => Promise<TargetStat>; isoInode?: string },
): Promise<TargetInfo> {
  const host = o.host ?? REAL_HOST;
  const st = await (o.statTarget ?? statTarget)(device);
  if (st.kind === 'missing' || st.kind === 'file') {
    if (!o.allowFile) {
      throw new UserError(
        st.kind === 'missing' ? `${device} does not exist` : `${device} is a regular file, not a block device; pass --allow-file to write the image into a file`,
        st.kind === 'missing' ? 'give a whole-disk device such as /dev/sdb (lsblk lists them), or --allow-file to create an image file' : undefined,
      );
    }
    if (st.kind === 'file' && o.isoInode && st.inode === o.isoInode) throw new UserError(`${device} is the ISO itself`);
    return {
      path: device,
      kind: 'file',
      name: null,
      size_bytes: st.kind === 'file' ? st.size ?? 0 : null,
      model: null,
      removable: null,
      description: st.kind === 'file' ? `regular file, ${formatBytes(st.size ?? 0)} now, will be replaced` : 'new regular file',
    };
  }
  if (st.kind !== 'block') throw new UserError(`${device} is neither a block device nor a regular file`);
  const devno = `${st.major}:${st.minor}`;
  const node = await nodeOf(host, devno);
  if (!node) throw new UserError(`${device} is block device ${devno}, which ${join(host.sys, 'dev', 'block')} does not know`);

  const partNo = await partitionNumber(node);
  if (partNo !== null) {
    const disk = await parentDisk(node);
    const diskDev = disk ? `/dev/${disk.name}` : 'the whole disk';
    throw new UserError(`${device} is partition ${partNo} of ${diskDev}: flash writes a whole disk; give ${diskDev}`);
  }

  const mounts = parseMountinfo((await readTrim(join(host.proc, 'self', 'mountinfo'))) ?? '');
  const root = await rootDevices(host, mounts);
  if (root && root.nodes.some((n) => n.devno === devno)) {
    throw new UserError(`${device} holds the root filesystem (/ is on ${root.rootName}): refusing to overwrite the running system`);
  }

  const parts = await partitionsOf(node);
  const family = [node, ...parts];
  const inUse: string[] = [];
  for (const n of family) {
    const here = mounts.filter((m) => m.devno === n.devno || m.source === `/dev/${n.name}`);
    if (here.length) inUse.push(`${n.name} is mounted at ${here.map(mountLabel).join(', ')}`);
  }
  const swaps = ((await readTrim(join(host.proc, 'swaps'))) ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter(Boolean);
  for (const n of family) if (swaps.includes(`/dev/${n.name}`)) inUse.push(`${n.name} is active swap`);
  for (const n of family) {
    const holders = await listDir(join(n.dir, 'holders'));
    if (holders.length) inUse.push(`${n.name} is held by ${holders.join(', ')} (device mapper, RAID or LVM)`);
  }
  if (inUse.length) {
    const mounted = mounts.filter((m) => family.some((n) => m.devno === n.devno || m.source === `/dev/${n.name}`)).map((m) => m.mountPoint);
    throw new UserError(
      `${device} is in use: ${inUse.join('; ')}`,
      mounted.length ? `unmount it first: umount ${mounted.join(' ')}` : 'release it first (swapoff, dmsetup remove, mdadm --stop …)',
    );
  }

  if ((await readTrim(join(node.dir, 'ro'))) === '1') throw new UserError(`${device} is read-only`);
  const sectors = Number((await readTrim(join(node.dir, 'size'))) ?? 'NaN');
  if (!Number.isFinite(sectors)) throw new UserError(`${device}: cannot read its size from ${join(node.dir, 'size')}`);
  // sysfs sizes are in 512-byte units whatever the logical block size.
  const size = sectors * 512;
  if (size < isoSize) {
    throw new UserError(`${device} is too small: ${formatBytes(size)} (${size} bytes) for a ${formatBytes(isoSize)} (${isoSize} bytes) ISO`);
  }
  const vendor = await readTrim(join(node.dir, 'device', 'vendor'));
  const modelName = await readTrim(join(node.dir, 'device', 'model'));
  const model = [vendor && !/^0x/.test(vendor) ? vendor : null, modelName].filter(Boolean).join(' ') || null;
  const backing = await readTrim(join(node.dir, 'loop', 'backing_file'));
  const removable = (await readTrim(join(node.dir, 'removable'))) === '1';
  const what = model ? model : backing ? `loop device backed by ${backing}` : node.name.startsWith('loop') ? 'loop device' : 'model unknown';
  return {
    path: device,
    kind: 'block',
    name: node.name,
    size_bytes: size,
    model,
    removable,
    description: `${what}, ${formatBytes(size)} (${size} bytes)${removable ? ', removable' : ''}, nothing mounted`,
  };
}

// ------------------------------------------------------------------ writing

function progress(phase: 'write' | 'readback', bytes: number, total: number, t0: number): FlashEvent {
  const elapsed = Date.now() - t0;
  const bps = elapsed > 0 ? (bytes * 1000) / elapsed : 0;
  return { event: 'progress', phase, bytes, total, elapsed_ms: elapsed, bytes_per_s: Math.round(bps), eta_s: bps > 0 ? Math.round((total - bytes) / bps) : null };
}

async function readFully(fh: Awaited<ReturnType<typeof open>>, buf: Buffer, len: number, pos: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

export async function flash(o: FlashOptions): Promise<FlashResult> {
  const emit = o.onEvent ?? (() => {});
  const iso = resolve(o.iso);
  let isoStat: Stats;
  try {
    isoStat = await stat(iso);
  } catch {
    throw new UserError(`ISO not found or not readable: ${o.iso}`);
  }
  if (!isoStat.isFile()) throw new UserError(`${o.iso} is not a regular file`);
  const isoSize = isoStat.size;
  const isoSha = await sha256File(iso);
  const base: FlashResult = {
    ok: false,
    status: 'FAIL',
    message: '',
    iso: { path: iso, size: isoSize, sha256: isoSha },
    vouched_by: [],
    target: null,
    written_bytes: 0,
    write_ms: 0,
    readback: null,
    results_area: null,
  };

  const v = await vouchForIso(o, iso, isoSha);
  if (!v.ok) return { ...base, reason: 'iso-unverified', message: `${v.message}; nothing was written` };
  base.vouched_by = v.vouches;
  emit({ event: 'verified', iso, size: isoSize, sha256: isoSha, vouched_by: v.vouches });

  const target = await inspectTarget(o.device, isoSize, { ...o, isoInode: `${isoStat.dev}:${isoStat.ino}` });
  base.target = target;
  emit({ event: 'target', target });

  if (!o.yes) {
    const name = target.name ?? basename(o.device);
    const answer = o.confirm ? await o.confirm(`Type "${name}" to overwrite ${o.device} (${target.description}); anything else cancels: `) : null;
    if (answer === null) {
      throw new UserError(`refusing to overwrite ${o.device} without confirmation`, 'pass --yes, or run at a terminal and type the device name when asked');
    }
    if (answer.trim() !== name && answer.trim() !== o.device) throw new UserError(`not confirmed ("${answer.trim()}" is not "${name}"); nothing was written`);
  }

  const chunk = o.chunkBytes ?? 4 * MiB;
  const syncEvery = o.syncEveryBytes ?? 32 * MiB;
  const block = target.kind === 'block';
  let out;
  try {
    out = await open(o.device, block ? constants.O_WRONLY | constants.O_EXCL : constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') throw new UserError(`${o.device} is busy: the kernel refused an exclusive open (something has it mounted or open exclusively)`);
    throw new UserError(`cannot open ${o.device} for writing: ${(err as Error).message}`);
  }
  const input = await open(iso, 'r');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(chunk);
  const t0 = Date.now();
  let written = 0;
  let sinceSync = 0;
  try {
    while (written < isoSize) {
      const n = await readFully(input, buf, Math.min(chunk, isoSize - written), written);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      let off = 0;
      while (off < n) {
        const { bytesWritten } = await out.write(buf, off, n - off, written + off);
        off += bytesWritten;
      }
      written += n;
      sinceSync += n;
      if (sinceSync >= syncEvery) {
        await out.datasync();
        sinceSync = 0;
      }
      emit(progress('write', written, isoSize, t0));
    }
    await out.sync();
  } finally {
    await input.close();
    await out.close();
  }
  const writeMs = Date.now() - t0;
  base.written_bytes = written;
  base.write_ms = writeMs;
  const wroteSha = hash.digest('hex');
  if (written !== isoSize || wroteSha !== isoSha) {
    return {
      ...base,
      reason: 'iso-changed',
      message: `the ISO changed while it was written (${written} of ${isoSize} bytes read, sha256 ${wroteSha}, vouched ${isoSha}); ${o.device} holds a partial image`,
    };
  }

  await o.hooks?.beforeReadback?.(o.device);
  let source: 'device' | 'page cache' = 'page cache';
  if (block) {
    // Without this the readback could come from the page cache we just filled.
    const r = await (o.runner ?? procRun)(['blockdev', '--flushbufs', o.device], { timeoutMs: 120_000 });
    if (r.ok) {
      source = 'device';
      emit({ event: 'flushed', how: `blockdev --flushbufs ${o.device}` });
    } else {
      emit({ event: 'note', message: `blockdev --flushbufs ${o.device} failed (${r.spawnError ?? r.tail.at(-1) ?? `exit ${r.exitCode}`}): the readback may come from the page cache` });
    }
  }

  const rb = await readBack(o.device, iso, isoSize, chunk, (bytes, t) => emit(progress('readback', bytes, isoSize, t)));
  const readback = { sha256: rb.sha256, first_difference: rb.firstDifference, source };
  const rate = writeMs > 0 ? `${formatBytes(Math.round((written * 1000) / writeMs))}/s` : 'instant';
  if (rb.firstDifference !== null || rb.sha256 !== isoSha) {
    const at = rb.firstDifference ?? 0;
    return {
      ...base,
      readback,
      reason: 'readback-mismatch',
      message: `readback of ${o.device} differs from the ISO at byte ${at} (0x${at.toString(16)})${rb.short ? `: the target ended after ${rb.bytes} of ${isoSize} bytes` : ''}; readback sha256 ${rb.sha256}, ISO sha256 ${isoSha}`,
    };
  }
  let area: FlashResult['results_area'] = null;
  if (o.resultsArea !== false) {
    if (block && target.size_bytes !== null && target.size_bytes < isoSize + AREA_BYTES) {
      emit({ event: 'note', message: `${o.device} has no room for a results area after the ISO (${formatBytes(target.size_bytes)}): hardware results can only come back as a serial console capture` });
    } else {
      const a = await writeResultsArea(o.device, { iso_sha256: isoSha, iso_bytes: isoSize });
      area = { offset: a.offset, bytes: AREA_BYTES };
      emit({ event: 'results-area', offset: a.offset, bytes: AREA_BYTES });
    }
  }
  return {
    ...base,
    ok: true,
    status: 'PASS',
    readback,
    results_area: area,
    message: `${basename(iso)} written to ${o.device}: ${formatBytes(written)} in ${(writeMs / 1000).toFixed(1)} s (${rate}); readback from the ${source} matches sha256 ${isoSha}${area ? `; empty results area at byte ${area.offset}` : ''}`,
  };
}

/** Read `size` bytes of the target and compare them with the ISO, chunk by chunk. */
async function readBack(
  device: string,
  iso: string,
  size: number,
  chunk: number,
  onProgress: (bytes: number, t0: number) => void,
): Promise<{ sha256: string; firstDifference: number | null; bytes: number; short: boolean }> {
  const dev = await open(device, 'r');
  const src = await open(iso, 'r');
  const a = Buffer.allocUnsafe(chunk);
  const b = Buffer.allocUnsafe(chunk);
  const h = createHash('sha256');
  let pos = 0;
  let first: number | null = null;
  let short = false;
  const t0 = Date.now();
  try {
    while (pos < size) {
      const want = Math.min(chunk, size - pos);
      const got = await readFully(dev, a, want, pos);
      await readFully(src, b, want, pos);
      h.update(a.subarray(0, got));
      if (first === null && !a.subarray(0, got).equals(b.subarray(0, got))) {
        for (let i = 0; i < got; i++) {
          if (a[i] !== b[i]) {
            first = pos + i;
            break;
          }
        }
      }
      pos += got;
      onProgress(pos, t0);
      if (got < want) {
        short = true;
        if (first === null) first = pos;
        break;
      }
    }
  } finally {
    await dev.close();
    await src.close();
  }
  return { sha256: h.digest('hex'), firstDifference: first, bytes: pos, short };
}
