import { describe, expect, it } from 'vitest';
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile, link } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lib/proc.js';
import { useTmpDirs } from '../test/helpers/tmp-dirs.js';
import { AREA_BYTES, areaHeaderBytes, areaOffset, parseArea, readResultsArea, writeResultsArea } from './results-area.js';

const tmp = useTmpDirs();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const GUEST_LIB = join(process.cwd(), 'buildroot-external/board/clawos/rootfs-overlay/usr/lib/clawos');

/** An image holding a 3 MB stand-in ISO and an empty area, as `flash --allow-file` leaves it. */
async function stick(d: string): Promise<{ img: string; iso: Buffer }> {
  const iso = randomBytes(3_000_000);
  const img = join(d, 'stick.img');
  await writeFile(img, iso);
  await writeResultsArea(img, { iso_sha256: sha(iso), iso_bytes: iso.length });
  return { img, iso };
}

/**
 * The guest's writer (results.sh) run by the host's busybox against a fake
 * /sys/block with one disk `sda` that is the image: what the init does after the marker.
 */
async function guestWrites(d: string, img: string, protocol: string): Promise<string> {
  const sys = join(d, 'sys', 'block', 'sda');
  await mkdir(sys, { recursive: true });
  await mkdir(join(d, 'dev'), { recursive: true });
  await writeFile(join(sys, 'size'), `${(await stat(img)).size / 512}\n`);
  await link(img, join(d, 'dev', 'sda'));
  const script = `RESULTS_SYS=${d}/sys RESULTS_DEV=${d}/dev
. ${GUEST_LIB}/checks.sh
. ${GUEST_LIB}/results.sh >/dev/null
printf '%s\\n' "${protocol}" >>"$RESULTS_LOG"
results_write`;
  const r = await run(['busybox', 'sh', '-c', script], { captureStdout: true });
  expect(r.exitCode).toBe(0);
  return r.stdout;
}

describe('the results area', () => {
  it('sits in the last 4 MiB, sector aligned', () => {
    expect(areaOffset(16 * 1024 * 1024)).toBe(12 * 1024 * 1024);
    expect(areaOffset(16 * 1024 * 1024 + 100)).toBe(12 * 1024 * 1024);
  });

  it('flash extends an image to the ISO rounded up to 1 MiB plus the area; the ISO bytes stay as they were', async () => {
    const d = await tmp();
    const { img, iso } = await stick(d);
    expect((await stat(img)).size).toBe(3 * 1024 * 1024 + AREA_BYTES);
    expect(sha((await readFile(img)).subarray(0, iso.length))).toBe(sha(iso));
    const r = await readResultsArea(img);
    expect(r).toMatchObject({ ok: false, reason: 'no-results', header: { iso_sha256: sha(iso), iso_bytes: iso.length, area_bytes: AREA_BYTES } });
    expect(r.ok ? '' : r.message).toBe(`${img}: the results area is empty: no ClawOS boot wrote to it (boot the machine from this stick first)`);
  });

  it('a disk without the header has no area', async () => {
    const d = await tmp();
    const img = join(d, 'plain.img');
    await writeFile(img, Buffer.alloc(8 * 1024 * 1024));
    const r = await readResultsArea(img);
    expect(r.ok ? '' : r.message).toBe(`${img} has no ClawOS results area (its last 4 MiB do not start with "CLAWOS-RESULTS-AREA v1"): flash the ISO with \`clawos-build flash\`, or add one with \`clawos-build hw prepare\``);
  });

  it('the guest writer (results.sh under busybox) fills the area; the host reads exactly what it wrote', async () => {
    const d = await tmp();
    const { img, iso } = await stick(d);
    const before = await readFile(img);
    const out = await guestWrites(d, img, 'CLAWOS-BOOT-OK passed=1');
    expect(out).toMatch(/^CLAWOS-RESULTS written=.*\/dev\/sda bytes=\d+$/m);
    const after = await readFile(img);
    // Nothing outside the area changed: the ISO and the padding before the area are the same bytes.
    const off = areaOffset(after.length);
    expect(after.subarray(0, off).equals(before.subarray(0, off))).toBe(true);
    expect(after.subarray(off, off + 512).equals(before.subarray(off, off + 512))).toBe(true);
    const r = await readResultsArea(img);
    if (!r.ok) throw new Error(r.message);
    const text = r.results.toString('utf8');
    expect(text.split('\n')[0]).toBe(`iso_sha256=${sha(iso)}`);
    expect(text).toMatch(/^CLAWOS-MACHINE arch=\S+$/m);
    expect(text).toMatch(/^CLAWOS-MACHINE boot_path=(BIOS|UEFI)$/m);
    expect(text).toContain('CLAWOS-BOOT-OK passed=1\n--- dmesg\n');
  });

  it('the guest writes nothing to a disk without the header', async () => {
    const d = await tmp();
    const img = join(d, 'other.img');
    const data = randomBytes(8 * 1024 * 1024);
    await writeFile(img, data);
    const out = await guestWrites(d, img, 'CLAWOS-BOOT-OK passed=1');
    expect(out).not.toContain('CLAWOS-RESULTS');
    expect((await readFile(img)).equals(data)).toBe(true);
  });

  it('truncated or damaged results are refused with the reason', async () => {
    const d = await tmp();
    const { img } = await stick(d);
    await guestWrites(d, img, 'CLAWOS-BOOT-OK passed=1');
    const size = (await stat(img)).size;
    const fh = await open(img, 'r+');
    const area = Buffer.alloc(AREA_BYTES);
    await fh.read(area, 0, AREA_BYTES, areaOffset(size));
    // A write cut off after 1000 bytes: the rest of the area is still empty.
    const cut = Buffer.concat([area.subarray(0, 1000), Buffer.alloc(AREA_BYTES - 1000)]);
    const bytes = Number(/bytes=(\d+)/.exec(area.subarray(512, 700).toString('latin1'))![1]);
    const r = parseArea(cut, 'stick');
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toBe('truncated');
    expect(r.ok ? '' : r.message).toMatch(new RegExp(`^stick: the results are truncated or damaged: ${bytes} of ${bytes} bytes, sha256 [0-9a-f]{64}, the guest wrote [0-9a-f]{64}$`));
    const noLine = Buffer.concat([areaHeaderBytes({ iso_sha256: 'a'.repeat(64), iso_bytes: 1, area_bytes: AREA_BYTES }).subarray(0, 512), Buffer.from('garbage\n'), Buffer.alloc(AREA_BYTES - 520)]);
    const r2 = parseArea(noLine, 'stick');
    expect(r2.ok ? '' : r2.message).toBe('stick: the results area does not start with a "CLAWOS-RESULTS v1 bytes=N sha256=HEX" line: the write was cut off or the area was overwritten');
    await fh.close();
  });

  it('a small image grows to hold the ISO and the area', async () => {
    const d = await tmp();
    const img = join(d, 'small.img');
    await writeFile(img, Buffer.alloc(1024));
    // A regular file grows; the size check is what a block device meets.
    await expect(writeResultsArea(img, { iso_sha256: 'a'.repeat(64), iso_bytes: 10 })).resolves.toMatchObject({ disk_bytes: 1024 * 1024 + AREA_BYTES });
  });
});
