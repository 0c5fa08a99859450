import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, open, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { run } from '../lib/proc.js';
import { UserError } from '../lib/errors.js';
import { flash, formatBytes, inspectTarget, parseMountinfo, REAL_HOST, type FlashEvent, type HostRoots, type TargetStat } from './flash.js';
import { exportBundle } from '../vault/export.js';
import { EPOCH, makeFixture, type Fixture } from '../test/fixtures/vault/make-bundle.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

let n = 0;
/** A fresh work dir with an ISO stand-in of `size` random bytes. */
async function work(size = 1024 * 1024): Promise<{ d: string; iso: string; data: Buffer; buildDir: string }> {
  const d = join(tmp.path, `w${++n}`);
  await mkdir(d, { recursive: true });
  const data = randomBytes(size);
  const iso = join(d, 'clawos-x86_64.iso');
  await writeFile(iso, data);
  return { d, iso, data, buildDir: join(d, 'build') };
}

async function expectUserError(p: Promise<unknown>, message: string, hint?: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).message).toBe(message);
  if (hint !== undefined) expect((err as UserError).hint).toBe(hint);
}

// ------------------------------------------------------------------ fake /sys and /proc

interface FakePart {
  name: string;
  devno: string;
  no: number;
  holders?: string[];
}
interface FakeDisk {
  name: string;
  devno: string;
  bytes: number;
  model?: string;
  vendor?: string;
  removable?: boolean;
  ro?: boolean;
  holders?: string[];
  /** Names of the devices (disk/part) a virtual device sits on, e.g. dm-0 on sda2. */
  slaves?: string[];
  parts?: FakePart[];
}

/** A /sys and /proc laid out as Linux does: /sys/dev/block/M:m links into /sys/devices/…/block/NAME[/PART]. */
async function fakeHost(disks: FakeDisk[], mountinfo: string, swaps = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n'): Promise<HostRoots> {
  const root = join(tmp.path, `host${++n}`);
  const sys = join(root, 'sys');
  const proc = join(root, 'proc');
  const blockDir = join(sys, 'devices', 'virtual', 'block');
  const where = new Map<string, string>();
  for (const d of disks) {
    where.set(d.name, join(blockDir, d.name));
    for (const p of d.parts ?? []) where.set(p.name, join(blockDir, d.name, p.name));
  }
  const node = async (dirPath: string, devno: string, bytes: number, holders: string[] = []) => {
    await mkdir(join(dirPath, 'holders'), { recursive: true });
    await mkdir(join(dirPath, 'slaves'), { recursive: true });
    await writeFile(join(dirPath, 'dev'), `${devno}\n`);
    await writeFile(join(dirPath, 'size'), `${bytes / 512}\n`);
    for (const h of holders) await mkdir(join(dirPath, 'holders', h), { recursive: true });
    await mkdir(join(sys, 'dev', 'block'), { recursive: true });
    await symlink(relative(join(sys, 'dev', 'block'), dirPath), join(sys, 'dev', 'block', devno));
    await mkdir(join(sys, 'class', 'block'), { recursive: true });
    await symlink(relative(join(sys, 'class', 'block'), dirPath), join(sys, 'class', 'block', dirPath.split('/').pop()!));
  };
  for (const d of disks) {
    const dd = join(blockDir, d.name);
    await node(dd, d.devno, d.bytes, d.holders);
    await writeFile(join(dd, 'ro'), d.ro ? '1\n' : '0\n');
    await writeFile(join(dd, 'removable'), d.removable ? '1\n' : '0\n');
    if (d.model || d.vendor) {
      await mkdir(join(dd, 'device'), { recursive: true });
      if (d.model) await writeFile(join(dd, 'device', 'model'), `${d.model}\n`);
      if (d.vendor) await writeFile(join(dd, 'device', 'vendor'), `${d.vendor}\n`);
    }
    for (const p of d.parts ?? []) {
      const pd = join(dd, p.name);
      await node(pd, p.devno, d.bytes / 4, p.holders);
      await writeFile(join(pd, 'partition'), `${p.no}\n`);
    }
  }
  for (const d of disks) {
    for (const s of d.slaves ?? []) await symlink(relative(join(blockDir, d.name, 'slaves'), where.get(s)!), join(blockDir, d.name, 'slaves', s));
  }
  await mkdir(join(proc, 'self'), { recursive: true });
  await writeFile(join(proc, 'self', 'mountinfo'), mountinfo);
  await writeFile(join(proc, 'swaps'), swaps);
  return { sys, proc };
}

/** stat() for the fake host: /dev/NAME is the block device with that number. */
function fakeStat(devnos: Record<string, string>) {
  return async (p: string): Promise<TargetStat> => {
    const d = devnos[p.replace(/^\/dev\//, '')];
    if (!d) return { kind: 'missing' };
    const [major, minor] = d.split(':').map(Number);
    return { kind: 'block', major, minor };
  };
}

const MOUNTS_VDA1_ROOT = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '23 27 0:22 / /sys rw,relatime - sysfs sysfs rw',
  '27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw,discard',
  '40 27 8:17 / /media/usb\\040stick rw,relatime shared:5 - vfat /dev/sdb1 rw',
  '',
].join('\n');

const DISKS: FakeDisk[] = [
  { name: 'vda', devno: '254:0', bytes: 64 * 2 ** 30, parts: [{ name: 'vda1', devno: '254:1', no: 1 }] },
  { name: 'sdb', devno: '8:16', bytes: 16 * 2 ** 30, removable: true, parts: [{ name: 'sdb1', devno: '8:17', no: 1 }] },
  { name: 'sdc', devno: '8:32', bytes: 8 * 2 ** 30, parts: [{ name: 'sdc1', devno: '8:33', no: 1 }, { name: 'sdc2', devno: '8:34', no: 2 }] },
  { name: 'sdd', devno: '8:48', bytes: 8 * 2 ** 30, parts: [{ name: 'sdd1', devno: '8:49', no: 1, holders: ['md0'] }] },
  { name: 'sde', devno: '8:64', bytes: 1 << 20, vendor: 'Generic ', model: 'Flash Disk' },
  { name: 'sdf', devno: '8:80', bytes: 32 * 2 ** 30, vendor: 'SanDisk ', model: 'Cruzer Blade    ', removable: true },
  { name: 'sdg', devno: '8:96', bytes: 8 * 2 ** 30, ro: true },
];
const DEVNOS = Object.fromEntries(DISKS.flatMap((d) => [[d.name, d.devno], ...(d.parts ?? []).map((p) => [p.name, p.devno])]));

describe('target inspection on a fake /sys and /proc', () => {
  let host: HostRoots;
  beforeAll(async () => {
    host = await fakeHost(DISKS, MOUNTS_VDA1_ROOT, 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdc2                               partition\t1048572\t\t0\t\t-2\n');
  });
  const inspect = (dev: string, isoSize = 2 << 20, allowFile = false) => inspectTarget(dev, isoSize, { host, statTarget: fakeStat(DEVNOS), allowFile });

  it('refuses the disk holding / (root on its partition)', async () => {
    await expectUserError(inspect('/dev/vda'), '/dev/vda holds the root filesystem (/ is on vda1): refusing to overwrite the running system');
  });
  it('refuses a partition where a whole disk is expected, naming the disk', async () => {
    await expectUserError(inspect('/dev/vda1'), '/dev/vda1 is partition 1 of /dev/vda: flash writes a whole disk; give /dev/vda');
    await expectUserError(inspect('/dev/sdc2'), '/dev/sdc2 is partition 2 of /dev/sdc: flash writes a whole disk; give /dev/sdc');
  });
  it('refuses a disk with a mounted partition, with the umount to run', async () => {
    await expectUserError(inspect('/dev/sdb'), '/dev/sdb is in use: sdb1 is mounted at /media/usb stick (vfat)', 'unmount it first: umount /media/usb stick');
  });
  it('refuses active swap and a partition held by md/dm', async () => {
    await expectUserError(inspect('/dev/sdc'), '/dev/sdc is in use: sdc2 is active swap', 'release it first (swapoff, dmsetup remove, mdadm --stop …)');
    await expectUserError(inspect('/dev/sdd'), '/dev/sdd is in use: sdd1 is held by md0 (device mapper, RAID or LVM)');
  });
  it('refuses a device smaller than the ISO, and a read-only one', async () => {
    await expectUserError(inspect('/dev/sde'), '/dev/sde is too small: 1.0 MiB (1048576 bytes) for a 2.0 MiB (2097152 bytes) ISO');
    await expectUserError(inspect('/dev/sdg'), '/dev/sdg is read-only');
  });
  it('describes a good disk with its model and size', async () => {
    expect(await inspect('/dev/sdf')).toEqual({
      path: '/dev/sdf',
      kind: 'block',
      name: 'sdf',
      size_bytes: 32 * 2 ** 30,
      model: 'SanDisk Cruzer Blade',
      removable: true,
      description: 'SanDisk Cruzer Blade, 32.0 GiB (34359738368 bytes), removable, nothing mounted',
    });
  });
  it('refuses a missing path and a regular file unless --allow-file', async () => {
    await expectUserError(inspect('/dev/nope'), '/dev/nope does not exist', 'give a whole-disk device such as /dev/sdb (lsblk lists them), or --allow-file to create an image file');
    const w = await work(10);
    await expectUserError(inspectTarget(w.iso, 10, { host }), `${w.iso} is a regular file, not a block device; pass --allow-file to write the image into a file`);
  });

  it('follows a root filesystem on device mapper down to its disk', async () => {
    const h = await fakeHost(
      [
        { name: 'sda', devno: '8:0', bytes: 64 * 2 ** 30, parts: [{ name: 'sda1', devno: '8:1', no: 1 }, { name: 'sda2', devno: '8:2', no: 2, holders: ['dm-0'] }] },
        { name: 'dm-0', devno: '253:0', bytes: 60 * 2 ** 30, slaves: ['sda2'] },
      ],
      '1 0 253:0 / / rw - ext4 /dev/mapper/vg-root rw\n',
    );
    await expectUserError(
      inspectTarget('/dev/sda', 1, { host: h, statTarget: fakeStat({ sda: '8:0' }) }),
      '/dev/sda holds the root filesystem (/ is on dm-0): refusing to overwrite the running system',
    );
  });

  it('parses mountinfo, unescaping octal escapes', () => {
    expect(parseMountinfo(MOUNTS_VDA1_ROOT)[3]).toEqual({ devno: '8:17', mountPoint: '/media/usb stick', fstype: 'vfat', source: '/dev/sdb1' });
  });

  it('formats sizes', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(3 << 20), formatBytes(32 * 2 ** 30)]).toEqual(['512 B', '1.5 KiB', '3.0 MiB', '32.0 GiB']);
  });
});

// ------------------------------------------------------------------ writing into files

describe('flash into a file (--allow-file)', () => {
  it('--no-results-area (resultsArea: false) leaves exactly the ISO', async () => {
    const w = await work(1024 * 1024);
    const out = join(w.d, 'bare.img');
    const r = await flash({ iso: w.iso, device: out, buildDir: w.buildDir, sha256: sha(w.data), allowFile: true, yes: true, resultsArea: false });
    expect(r).toMatchObject({ ok: true, results_area: null });
    expect(readFileSync(out).equals(w.data)).toBe(true);
  });

  it('writes, fsyncs, reads back and reports progress with throughput and ETA', async () => {
    const w = await work(1024 * 1024);
    const out = join(w.d, 'disk.img');
    const events: FlashEvent[] = [];
    const r = await flash({ iso: w.iso, device: out, buildDir: w.buildDir, sha256: sha(w.data), allowFile: true, yes: true, chunkBytes: 64 * 1024, onEvent: (e) => events.push(e) });
    expect(r).toMatchObject({ ok: true, status: 'PASS', written_bytes: 1024 * 1024, readback: { sha256: sha(w.data), first_difference: null, source: 'page cache' } });
    expect(r.message).toMatch(new RegExp(`^clawos-x86_64\\.iso written to ${out.replace(/[.]/g, '\\.')}: 1\\.0 MiB in \\d+\\.\\d s \\((\\d+\\.\\d [KMG]iB/s|instant)\\); readback from the page cache matches sha256 ${sha(w.data)}; empty results area at byte 1048576$`));
    // The ISO's bytes unchanged, then the empty results area in the image's last 4 MiB.
    const img = readFileSync(out);
    expect(img.subarray(0, w.data.length).equals(w.data)).toBe(true);
    expect(img.length).toBe(1024 * 1024 + 4 * 1024 * 1024);
    expect(img.subarray(1024 * 1024, 1024 * 1024 + 23).toString('latin1')).toBe('CLAWOS-RESULTS-AREA v1\n');
    const writes = events.filter((e): e is Extract<FlashEvent, { event: 'progress' }> => e.event === 'progress' && e.phase === 'write');
    expect(writes).toHaveLength(16);
    expect(writes.map((e) => e.bytes)).toEqual(Array.from({ length: 16 }, (_, i) => (i + 1) * 64 * 1024));
    expect(writes.at(-1)).toMatchObject({ total: 1024 * 1024, eta_s: 0 });
    expect(events[0]).toEqual({ event: 'verified', iso: w.iso, size: 1024 * 1024, sha256: sha(w.data), vouched_by: [{ source: 'sha256', detail: `--sha256 ${sha(w.data)}` }] });
    expect(events[1]).toMatchObject({ event: 'target', target: { kind: 'file', description: 'new regular file' } });
  });

  it('a corrupted readback fails with the first differing offset', async () => {
    const w = await work(2 * 1024 * 1024);
    const out = join(w.d, 'disk.img');
    const r = await flash({
      iso: w.iso,
      device: out,
      buildDir: w.buildDir,
      sha256: sha(w.data),
      allowFile: true,
      yes: true,
      hooks: {
        beforeReadback: async (t) => {
          const fh = await open(t, 'r+');
          const b = Buffer.from([w.data[1_234_567]! ^ 0xff]);
          await fh.write(b, 0, 1, 1_234_567);
          await fh.close();
        },
      },
    });
    const bad = Buffer.from(w.data);
    bad[1_234_567] = bad[1_234_567]! ^ 0xff;
    expect(r).toMatchObject({ ok: false, status: 'FAIL', reason: 'readback-mismatch', readback: { first_difference: 1_234_567 } });
    expect(r.message).toBe(`readback of ${out} differs from the ISO at byte 1234567 (0x12d687); readback sha256 ${sha(bad)}, ISO sha256 ${sha(w.data)}`);
  });

  it('a target that comes back short fails at the byte where it ends', async () => {
    const w = await work(100_000);
    const out = join(w.d, 'disk.img');
    const r = await flash({ iso: w.iso, device: out, buildDir: w.buildDir, sha256: sha(w.data), allowFile: true, yes: true, hooks: { beforeReadback: (t) => truncate(t, 1000) } });
    expect(r.reason).toBe('readback-mismatch');
    expect(r.message).toBe(`readback of ${out} differs from the ISO at byte 1000 (0x3e8): the target ended after 1000 of 100000 bytes; readback sha256 ${sha(w.data.subarray(0, 1000))}, ISO sha256 ${sha(w.data)}`);
  });

  it('refuses to write the ISO onto itself', async () => {
    const w = await work(10);
    await expectUserError(flash({ iso: w.iso, device: w.iso, buildDir: w.buildDir, sha256: sha(w.data), allowFile: true, yes: true }), `${w.iso} is the ISO itself`);
  });

  it('asks for the device name when --yes is missing, and writes nothing unless it is typed', async () => {
    const w = await work(4096);
    const out = join(w.d, 'disk.img');
    const base = { iso: w.iso, device: out, buildDir: w.buildDir, sha256: sha(w.data), allowFile: true };
    await expectUserError(flash(base), `refusing to overwrite ${out} without confirmation`, 'pass --yes, or run at a terminal and type the device name when asked');
    const asked: string[] = [];
    await expectUserError(
      flash({ ...base, confirm: async (q) => (asked.push(q), 'sdb') }),
      'not confirmed ("sdb" is not "disk.img"); nothing was written',
    );
    expect(asked).toEqual([`Type "disk.img" to overwrite ${out} (new regular file); anything else cancels: `]);
    expect(existsSync(out)).toBe(false);
    expect((await flash({ ...base, confirm: async () => 'disk.img\n' })).ok).toBe(true);
  });
});

// ------------------------------------------------------------------ vouching

describe('the ISO must be vouched for before anything is written', () => {
  it('refuses an ISO nothing vouches for, with the three ways out', async () => {
    const w = await work(100);
    const out = join(w.d, 'disk.img');
    await expectUserError(
      flash({ iso: w.iso, device: out, buildDir: w.buildDir, allowFile: true, yes: true }),
      `nothing vouches for ${w.iso} (sha256 ${sha(w.data)}): it is not recorded in ${join(w.buildDir, 'vault', 'manifest.json')}, and neither --bundle nor --sha256 was given`,
      'pass --bundle DIR --trust keys.json (a signed bundle that lists the ISO), or --sha256 HEX, or flash an ISO this build recorded (--build-dir)',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('a wrong --sha256 fails before the target is touched', async () => {
    const w = await work(100);
    const out = join(w.d, 'disk.img');
    const r = await flash({ iso: w.iso, device: out, buildDir: w.buildDir, sha256: 'A'.repeat(64), allowFile: true, yes: true });
    expect(r).toMatchObject({ ok: false, reason: 'iso-unverified', message: `the ISO's sha256 is ${sha(w.data)}, not the ${'a'.repeat(64)} given with --sha256; nothing was written` });
    expect(existsSync(out)).toBe(false);
    await expectUserError(flash({ iso: w.iso, device: out, buildDir: w.buildDir, sha256: 'xyz', allowFile: true, yes: true }), '--sha256 takes 64 hex digits, not "xyz"');
  });

  it("uses the sha256 the build recorded in the vault manifest, and notices a changed ISO", async () => {
    const w = await work(1000);
    const iso = join(w.buildDir, 'build-engineer', 'x86_64', 'clawos-x86_64.iso');
    await mkdir(dirname(iso), { recursive: true });
    await writeFile(iso, w.data);
    const entry = { path: 'build-engineer/x86_64/clawos-x86_64.iso', sha256: sha(w.data), size: 1000, producer: 'G-05@x86_64' };
    await mkdir(join(w.buildDir, 'vault'), { recursive: true });
    await writeFile(join(w.buildDir, 'vault', 'manifest.json'), JSON.stringify({ format: 'clawos-vault-manifest@1', updated_at: '2025-11-21T00:00:00Z', entries: [entry] }));
    const out = join(w.d, 'disk.img');
    const r = await flash({ iso, device: out, buildDir: w.buildDir, allowFile: true, yes: true });
    expect(r.ok).toBe(true);
    expect(r.vouched_by).toEqual([{ source: 'manifest', detail: `unsigned build record ${join(w.buildDir, 'vault', 'manifest.json')}: build-engineer/x86_64/clawos-x86_64.iso from G-05@x86_64` }]);
    await writeFile(iso, Buffer.concat([w.data.subarray(0, 999), Buffer.from('!')]));
    const changed = await flash({ iso, device: join(w.d, 'disk2.img'), buildDir: w.buildDir, allowFile: true, yes: true });
    expect(changed.message).toBe(
      `the ISO changed since the build recorded it: sha256 ${sha(readFileSync(iso))}, ${join(w.buildDir, 'vault', 'manifest.json')} says ${sha(w.data)} for build-engineer/x86_64/clawos-x86_64.iso; nothing was written`,
    );
  });

  describe('a signed bundle and the trusted keys', () => {
    let fx: Fixture;
    let trustFile: string;
    beforeAll(async () => {
      fx = await makeFixture();
      trustFile = join(fx.root, 'keys.json');
      await writeFile(trustFile, JSON.stringify({ format: 'clawos-trust-root', version: 1, keys: fx.trustEntries }));
    });
    afterAll(async () => {
      await fx.cleanup();
    });

    it('vouch for an ISO the bundle lists (directory and exported tar)', async () => {
      const iso = join(fx.bundleDir, 'artifacts', 'x86_64', 'clawos-x86_64.iso');
      const w = await work(1);
      const r = await flash({ iso, device: join(w.d, 'disk.img'), buildDir: w.buildDir, bundle: fx.bundleDir, trust: trustFile, allowFile: true, yes: true });
      expect(r.ok).toBe(true);
      expect(r.vouched_by).toEqual([
        { source: 'bundle', detail: `signed bundle ${fx.bundleDir}: run run-20251121T000000Z-a1b2, release 0.1.0-alpha, as artifacts/x86_64/clawos-x86_64.iso` },
      ]);
      const tar = join(fx.root, 'bundle.tar');
      await exportBundle(fx.bundleDir, tar, { sourceDateEpoch: EPOCH });
      const t = await flash({ iso, device: join(w.d, 'disk2.img'), buildDir: w.buildDir, bundle: tar, trust: trustFile, allowFile: true, yes: true });
      expect(t.ok).toBe(true);
    });

    it('refuse an ISO the bundle does not list, and a tampered bundle', async () => {
      const w = await work(5000);
      const r = await flash({ iso: w.iso, device: join(w.d, 'disk.img'), buildDir: w.buildDir, bundle: fx.bundleDir, trust: trustFile, allowFile: true, yes: true });
      expect(r.message).toBe(
        `the ISO (sha256 ${sha(w.data)}) is not among the 7 files of bundle ${fx.bundleDir} (run run-20251121T000000Z-a1b2, release 0.1.0-alpha); nothing was written`,
      );
      const copy = join(w.d, 'bundle');
      await cp(fx.bundleDir, copy, { recursive: true });
      const kernel = join(copy, 'artifacts', 'x86_64', 'vmlinuz');
      const b = await readFile(kernel);
      b[10] = b[10]! ^ 1;
      await writeFile(kernel, b);
      const iso = join(copy, 'artifacts', 'x86_64', 'clawos-x86_64.iso');
      const t = await flash({ iso, device: join(w.d, 'disk2.img'), buildDir: w.buildDir, bundle: copy, trust: trustFile, allowFile: true, yes: true });
      expect(t).toMatchObject({ ok: false, reason: 'iso-unverified' });
      expect(t.message).toMatch(new RegExp(`^bundle ${copy} failed verification: HASH_MISMATCH: artifacts/x86_64/vmlinuz: sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}; nothing was written$`));
      expect(existsSync(join(w.d, 'disk2.img'))).toBe(false);
    });

    it('--bundle without --trust is refused', async () => {
      const w = await work(1);
      await expectUserError(
        flash({ iso: w.iso, device: join(w.d, 'x.img'), buildDir: w.buildDir, bundle: fx.bundleDir, allowFile: true, yes: true }),
        '--bundle needs --trust FILE: the trusted keys (keys.json) to verify it with',
      );
    });
  });
});

// ------------------------------------------------------------------ real loop devices

/** Loop devices need root and a kernel that lets us have them; say why when not. */
async function loopSupport(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root: loop devices need root';
  const r = await run(['losetup', '--find'], { captureStdout: true });
  if (!r.ok) return `losetup --find failed: ${r.spawnError ?? r.tail.at(-1) ?? r.exitCode}`;
  return null;
}

async function withLoop<T>(bytes: number, fn: (dev: string, img: string) => Promise<T>, prep?: (img: string) => Promise<void>): Promise<T> {
  const img = join(tmp.path, `loop${++n}.img`);
  await writeFile(img, '');
  await truncate(img, bytes);
  await prep?.(img);
  const a = await run(['losetup', '--find', '--show', img], { captureStdout: true });
  if (!a.ok) throw new Error(`losetup failed: ${a.tail.join(' ')}`);
  const dev = a.stdout.trim();
  try {
    return await fn(dev, img);
  } finally {
    await run(['losetup', '-d', dev]);
  }
}

describe('flash onto real loop devices', () => {
  let skip: string | null = 'not probed';
  beforeAll(async () => {
    skip = await loopSupport();
  });

  it('writes a loop device, flushes its buffers and verifies the readback from the device', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = await work(3 * 1024 * 1024);
    await withLoop(8 * 1024 * 1024, async (dev, img) => {
      const events: FlashEvent[] = [];
      const r = await flash({ iso: w.iso, device: dev, buildDir: w.buildDir, sha256: sha(w.data), yes: true, onEvent: (e) => events.push(e) });
      expect(r).toMatchObject({ ok: true, readback: { source: 'device', first_difference: null } });
      expect(r.target?.description).toBe(`loop device backed by ${img}, 8.0 MiB (8388608 bytes), nothing mounted`);
      expect(events).toContainEqual({ event: 'flushed', how: `blockdev --flushbufs ${dev}` });
      expect(readFileSync(img).subarray(0, w.data.length).equals(w.data)).toBe(true);
    });
  });

  it('refuses a loop device smaller than the ISO', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = await work(3 * 1024 * 1024);
    await withLoop(1024 * 1024, async (dev) => {
      await expectUserError(flash({ iso: w.iso, device: dev, buildDir: w.buildDir, sha256: sha(w.data), yes: true }), `${dev} is too small: 1.0 MiB (1048576 bytes) for a 3.0 MiB (3145728 bytes) ISO`);
    });
  });

  it('refuses a mounted loop device and leaves it untouched', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const mkfs = await run(['mkfs.ext4', '-V']);
    if (!mkfs.ok) return ctx.skip('mkfs.ext4 is not installed');
    const w = await work(64 * 1024);
    const mnt = join(tmp.path, `mnt${++n}`);
    await mkdir(mnt);
    await withLoop(
      8 * 1024 * 1024,
      async (dev, img) => {
        const m = await run(['mount', dev, mnt]);
        if (!m.ok) return ctx.skip(`mount failed here: ${m.tail.at(-1)}`);
        try {
          const before = sha(readFileSync(img));
          const name = dev.replace('/dev/', '');
          await expectUserError(
            flash({ iso: w.iso, device: dev, buildDir: w.buildDir, sha256: sha(w.data), yes: true }),
            `${dev} is in use: ${name} is mounted at ${mnt} (ext4)`,
            `unmount it first: umount ${mnt}`,
          );
          expect(sha(readFileSync(img))).toBe(before);
        } finally {
          await run(['umount', mnt]);
        }
      },
      async (img) => {
        const r = await run(['mkfs.ext4', '-q', '-F', img]);
        if (!r.ok) throw new Error(`mkfs.ext4: ${r.tail.join(' ')}`);
      },
    );
  });

  it('a loop device corrupted between write and readback fails with the offset', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = await work(2 * 1024 * 1024);
    await withLoop(4 * 1024 * 1024, async (dev) => {
      const r = await flash({
        iso: w.iso,
        device: dev,
        buildDir: w.buildDir,
        sha256: sha(w.data),
        yes: true,
        hooks: {
          beforeReadback: async (t) => {
            const fh = await open(t, 'r+');
            await fh.write(Buffer.from([w.data[1_048_577]! ^ 0x80]), 0, 1, 1_048_577);
            await fh.sync();
            await fh.close();
          },
        },
      });
      expect(r).toMatchObject({ ok: false, reason: 'readback-mismatch', readback: { first_difference: 1_048_577, source: 'device' } });
      expect(r.message.startsWith(`readback of ${dev} differs from the ISO at byte 1048577 (0x100001); readback sha256 `)).toBe(true);
    });
  });

  it('refuses the real disk holding / (inspection only, read from the real /sys and /proc)', async (ctx) => {
    const root = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).reverse().find((m) => m.mountPoint === '/');
    if (!root || root.devno.startsWith('0:') || !existsSync(join('/sys/dev/block', root.devno))) return ctx.skip(`/ is not on a block device here (${root?.source ?? 'no root mount'})`);
    const [major, minor] = root.devno.split(':').map(Number);
    const err = await inspectTarget('/dev/the-root-disk', 1, { host: REAL_HOST, statTarget: async () => ({ kind: 'block', major, minor }) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/^\/dev\/the-root-disk (holds the root filesystem \(\/ is on \S+\): refusing to overwrite the running system|is partition \d+ of \/dev\/\S+: flash writes a whole disk; give \/dev\/\S+)$/);
  });
});
