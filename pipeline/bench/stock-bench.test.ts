import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from '../../lib/proc.js';
import { loadMachine } from '../../qemu/machine.js';
import { loadArches } from '../catalog/arch.js';
import { compareMetric, formatBenchTable, median, memUsedFromSerial, runStockBench, summarize, type BenchResult, type BenchSample } from './stock-bench.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');
const FAKE_QEMU = join(REPO, 'test', 'fakes', 'fake-qemu');

const sample = (kernel: 'clawos' | 'baseline', run: number, init_ms: number | null, mem_used_kb: number | null): BenchSample => ({
  kernel,
  run,
  verdict: 'PASS',
  init_ms,
  mem_used_kb,
  serial_log: `${kernel}-${run}/seabios.serial.log`,
});

describe('stock-bench figures', () => {
  it('reads mem_used_kb from the CLAWOS-INIT line only', () => {
    expect(memUsedFromSerial(['Linux version 6.1', 'CLAWOS-INIT arch=x86_64 mem_used_kb=21432 mem_total_kb=490000'])).toBe(21432);
    expect(memUsedFromSerial(['CLAWOS-INIT arch=x86_64', 'mem_used_kb=5'])).toBeNull();
  });

  it('takes the median, and the mean of the middle two for an even count', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });

  it('scores baseline / ClawOS and passes at the bar, not below it', () => {
    expect(compareMetric('time_to_init_ms', 1000, 800, 0.8)).toEqual({ name: 'time_to_init_ms', better: 'lower', clawos: 1000, baseline: 800, score: 0.8, pass: true });
    expect(compareMetric('time_to_init_ms', 1000, 799, 0.8).pass).toBe(false);
    expect(compareMetric('mem_used_kb', null, 800, 0.8)).toMatchObject({ score: null, pass: false });
  });

  it('summarizes medians per kernel and ignores boots that gave no figure', () => {
    const samples = [sample('clawos', 1, 3000, 20000), sample('baseline', 1, 30000, 60000), sample('clawos', 2, 5000, null), sample('baseline', 2, 20000, 50000), sample('clawos', 3, 4000, 22000), sample('baseline', 3, 25000, 55000)];
    const m = summarize(samples, { clawos: 3_000_000, baseline: 9_000_000 }, 0.8);
    expect(m.map((x) => [x.name, x.clawos, x.baseline, x.score])).toEqual([
      ['time_to_init_ms', 4000, 25000, 6.25],
      ['mem_used_kb', 21000, 55000, 55000 / 21000],
      ['kernel_image_bytes', 3_000_000, 9_000_000, 3],
    ]);
  });

  it('prints a table a release engineer can read', () => {
    const r: BenchResult = {
      arch: 'x86_64',
      accel: 'tcg',
      runs: 3,
      bar: 0.8,
      baseline_kernel: { package: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2', sha256: 'a'.repeat(64), image: '/x/vmlinuz' },
      samples: [],
      metrics: [compareMetric('time_to_init_ms', 4000, 25000, 0.8), compareMetric('mem_used_kb', 30000, 20000, 0.8), compareMetric('kernel_image_bytes', 3 * 1048576, 8 * 1048576, 0.8)],
      ok: false,
    };
    expect(formatBenchTable(r)).toBe(
      [
        "x86_64: ClawOS vs Debian's stock kernel (linux-image-6.1.0-56-amd64 6.1.192-2), same QEMU machine (tcg), same initramfs, median of 3 boots each",
        'metric (lower is better)  ClawOS    Debian 6.1.192-2  score  bar 0.8',
        'time_to_init_ms           4.00 s    25.00 s           6.25x  ok',
        'mem_used_kb               29.3 MiB  19.5 MiB          0.67x  BELOW 0.8',
        'kernel_image_bytes        3.0 MiB   8.0 MiB           2.67x  ok',
        'score = baseline / ClawOS (higher is better for ClawOS)',
      ].join('\n'),
    );
  });
});

describe('runStockBench', () => {
  it('boots both kernels with the same initramfs on the same machine, alternating, and compares the medians', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      // A fake QEMU that replays the real serial capture of whichever kernel it was given.
      const argsFile = join(d, 'args');
      const qemu = join(d, 'qemu-system-x86_64');
      await writeFile(
        qemu,
        `#!/bin/bash\nfor a in "$@"; do case "$a" in *stock-vmlinuz) export FAKE_QEMU_LOG=${LOGS}/x86_64-bench-debian-stock.log ;; *clawos-vmlinuz) export FAKE_QEMU_LOG=${LOGS}/x86_64-bench-clawos.log ;; esac; done\nexec ${FAKE_QEMU} "$@"\n`,
      );
      await chmod(qemu, 0o755);
      await writeFile(join(d, 'clawos-vmlinuz'), Buffer.alloc(3000));
      await writeFile(join(d, 'stock-vmlinuz'), Buffer.alloc(9000));
      await writeFile(join(d, 'initrd'), 'initrd');
      const arch = (await loadArches(REPO)).get('x86_64')!;
      const machine = await loadMachine(REPO, arch.qemu);
      const logs: string[] = [];
      const r = await runStockBench({
        ctx: { run: (a, o = {}) => run(a, o), cacheDir: d, log: (l) => logs.push(l), progress: () => {}, signal: new AbortController().signal },
        arch,
        machine,
        variant: arch.baseline!.variant,
        accel: 'tcg',
        accelNote: 'test',
        clawosKernel: join(d, 'clawos-vmlinuz'),
        initramfs: join(d, 'initrd'),
        baseline: { deb: { package: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2', arch: 'amd64', sha256: 'b'.repeat(64), root: d }, image: join(d, 'stock-vmlinuz') },
        runs: 2,
        bar: 0.8,
        outDir: join(d, 'out'),
        binary: qemu,
        env: { FAKE_QEMU_ARGS_FILE: argsFile, FAKE_QEMU_DELAY_MS: '1' },
      });
      expect(r.samples.map((s) => `${s.kernel}-${s.run}`)).toEqual(['clawos-1', 'baseline-1', 'clawos-2', 'baseline-2']);
      // Memory comes from the real captures' CLAWOS-INIT lines.
      const clawosMem = memUsedFromSerial((await readFile(join(LOGS, 'x86_64-bench-clawos.log'), 'utf8')).split('\n'));
      const stockMem = memUsedFromSerial((await readFile(join(LOGS, 'x86_64-bench-debian-stock.log'), 'utf8')).split('\n'));
      expect(clawosMem).not.toBeNull();
      expect(r.samples.filter((s) => s.kernel === 'baseline').map((s) => s.mem_used_kb)).toEqual([stockMem, stockMem]);
      expect(r.metrics.find((m) => m.name === 'kernel_image_bytes')).toMatchObject({ clawos: 3000, baseline: 9000, score: 3, pass: true });
      expect(r.metrics.find((m) => m.name === 'mem_used_kb')).toMatchObject({ clawos: clawosMem, baseline: stockMem });
      expect(r.samples.every((s) => s.init_ms !== null)).toBe(true);
      // Both kernels: same -initrd, same machine and accelerator, no ISO.
      const boots = (await readFile(argsFile, 'utf8')).split('--\n').filter(Boolean);
      expect(boots).toHaveLength(4);
      for (const b of boots) {
        const argv = b.trim().split('\n');
        expect(argv[argv.indexOf('-initrd') + 1]).toBe(join(d, 'initrd'));
        expect(argv[argv.indexOf('-machine') + 1]).toBe(machine.machine);
        expect(argv[argv.indexOf('-accel') + 1]).toBe('tcg');
        expect(argv).not.toContain('-cdrom');
      }
    } finally {
      await cleanup();
    }
  });
});
