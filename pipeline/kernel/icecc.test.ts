import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../lib/proc.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import {
  countClientJobs,
  countSchedulerJobs,
  crossTarget,
  describeJobs,
  ensureIceccEnv,
  hostPlatform,
  iceccClientEnv,
  iceccFrontScript,
  iceccMakeVars,
  iceccVersion,
  KEPT_HERE,
  icecreamSetting,
} from './icecc.js';

// Lines as icecc 1.4's client and scheduler write them (taken from a run of test/icecc-cluster.test.ts).
const CLIENT_LOG = [
  'ICECC[27251] 2026-12-06 10:44:20: Have to use host 10.213.7.2:10245 - Job ID: 61 - env: x86_64 - has env: false - match j: 51',
  'ICECC[27317] 2026-12-06 10:44:21: Have to use host 10.213.7.2:10245 - Job ID: 62 - env: x86_64 - has env: true - match j: 51',
  'ICECC[27318] 2026-12-06 10:44:21: Have to use host 10.213.7.3:10245 - Job ID: 63 - env: x86_64 - has env: false - match j: 51',
  'ICECC[8238] 2026-12-06 10:36:26: building myself, but telling localhost',
  'ICECC[20535] 2026-12-06 10:42:10: local build forced by remote exception: Error 103 - local cpp invocation failed, trying to recompile locally',
  'ICECC[9957] 2026-12-06 10:37:03: connect failed on /root/.iceccd.socket',
  '',
].join('\n');

describe('icecream argv and environment', () => {
  it('names the platform as icecc does', () => {
    expect(hostPlatform('x64')).toBe('x86_64');
    expect(hostPlatform('arm64')).toBe('aarch64');
    expect(hostPlatform('riscv64')).toBe('riscv64');
  });

  it('puts the compiler through the front on make\'s command line', () => {
    expect(iceccMakeVars('', '/o/clawos-tools/icecc-front')).toEqual(['CC=/o/clawos-tools/icecc-front gcc -gno-record-gcc-switches']);
    expect(iceccMakeVars('aarch64-linux-gnu-', '/o/f')).toEqual(['CC=/o/f aarch64-linux-gnu-gcc -gno-record-gcc-switches']);
  });

  it('gives a native environment as a path and a cross one with its platform and target', () => {
    expect(crossTarget('')).toBeNull();
    expect(crossTarget('aarch64-linux-gnu-')).toBe('aarch64-linux-gnu');
    expect(iceccVersion('/c/x86.tar.gz', '', 'x86_64')).toBe('/c/x86.tar.gz');
    expect(iceccVersion('/c/arm.tar.gz', 'aarch64-linux-gnu-', 'x86_64')).toBe('x86_64:/c/arm.tar.gz=aarch64-linux-gnu');
    expect(iceccClientEnv({ tarball: '/c/arm.tar.gz', crossCompile: 'aarch64-linux-gnu-', logFile: '/o/icecc.log', platform: 'x86_64' })).toEqual({
      ICECC_VERSION: 'x86_64:/c/arm.tar.gz=aarch64-linux-gnu',
      ICECC_DEBUG: 'debug',
      ICECC_LOGFILE: '/o/icecc.log',
    });
  });
});

// The real front script under /bin/sh; icecc and the compiler are stand-ins that say how they were called.
describe('the icecream front', () => {
  const tmp = useTmpDirs();

  async function front(source: string | null, extra: string[] = []) {
    const d = await tmp();
    const bin = join(d, 'bin');
    await mkdir(bin);
    for (const name of ['icecc', 'gcc']) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*"\n`);
      await chmod(join(bin, name), 0o755);
    }
    await writeFile(join(d, 'front'), iceccFrontScript(), { mode: 0o755 });
    const args = ['gcc', '-gno-record-gcc-switches', '-DKBUILD_BASENAME="x"', ...extra];
    if (source !== null) {
      await writeFile(join(d, 'x.c'), source);
      args.push('-c', '-o', 'x.o', join(d, 'x.c'));
    }
    const log = join(d, 'client.log');
    const r = await run([join(d, 'front'), ...args], { captureStdout: true, env: { PATH: `${bin}:/usr/bin:/bin`, ICECC_LOGFILE: log } });
    expect(r.ok).toBe(true);
    return { stdout: r.stdout.trim(), log: await readFile(log, 'utf8').catch(() => ''), src: join(d, 'x.c') };
  }

  it('compiles a C file that defines CREATE_TRACE_POINTS here, and says so in the client log', async () => {
    const r = await front('#include <linux/x.h>\n #  define CREATE_TRACE_POINTS\n#include <trace/events/x.h>\n');
    expect(r.stdout).toBe(`gcc -gno-record-gcc-switches -DKBUILD_BASENAME="x" -c -o x.o ${r.src}`);
    expect(r.log).toBe(`${KEPT_HERE}${r.src}\n`);
    expect(countClientJobs(r.log)).toEqual({ remote: {}, local: 0, redone: 0, noDaemon: 0, kept: 1 });
  });

  it('hands every other command to icecc: other C files, a define of a longer name, no source at all', async () => {
    for (const src of ['int x;\n', '#define CREATE_TRACE_POINTS_NOT\n', '// #define CREATE_TRACE_POINTS\n']) {
      const r = await front(src);
      expect(r.stdout).toBe(`icecc gcc -gno-record-gcc-switches -DKBUILD_BASENAME="x" -c -o x.o ${r.src}`);
      expect(r.log).toBe('');
    }
    expect((await front(null, ['--version'])).stdout).toBe('icecc gcc -gno-record-gcc-switches -DKBUILD_BASENAME="x" --version');
  });
});

describe('icecreamSetting', () => {
  it('is off unless --icecream, --icecream-jobs or the config file asks; -j is 4 x the run\'s unless given', () => {
    expect(icecreamSetting({}, undefined, 2)).toBeNull();
    expect(icecreamSetting({ on: true }, undefined, 2)).toEqual({ jobs: 8 });
    expect(icecreamSetting({}, {}, 3)).toEqual({ jobs: 12 });
    expect(icecreamSetting({}, { jobs: 20 }, 2)).toEqual({ jobs: 20 });
    expect(icecreamSetting({ jobs: 6 }, { jobs: 20 }, 2)).toEqual({ jobs: 6 });
  });
});

describe('icecream logs', () => {
  it('counts the client\'s jobs per host, and what stayed here', () => {
    const c = countClientJobs(CLIENT_LOG);
    expect(c).toEqual({ remote: { '10.213.7.2': 2, '10.213.7.3': 1 }, local: 1, redone: 1, noDaemon: 0, kept: 0 });
    // Counts add up over several makes.
    expect(countClientJobs('ICECC[1] 2026-12-06 10:00:00: Have to use host 10.213.7.3:10245 - Job ID: 9 - env: x86_64 - has env: true - match j: 0\n', c).remote).toEqual({
      '10.213.7.2': 2,
      '10.213.7.3': 2,
    });
  });

  it('says which hosts compiled, biggest first', () => {
    expect(describeJobs(countClientJobs(CLIENT_LOG))).toBe(
      'icecream: 3 compile job(s) on 2 host(s) (10.213.7.2 2, 10.213.7.3 1); 1 given back to this machine by the scheduler, 1 redone here after failing remotely',
    );
    expect(describeJobs(countClientJobs(`${CLIENT_LOG}${KEPT_HERE}/src/kernel/printk/printk.c\n${KEPT_HERE}/src/arch/x86/mm/fault.c\n`))).toBe(
      'icecream: 3 compile job(s) on 2 host(s) (10.213.7.2 2, 10.213.7.3 1); 1 given back to this machine by the scheduler, 1 redone here after failing remotely, 2 compiled here as they define CREATE_TRACE_POINTS',
    );
  });

  it('says once that nothing left this machine, and why', () => {
    expect(describeJobs(countClientJobs('ICECC[5] 2026-12-06 10:00:00: no local daemon found\nICECC[6] 2026-12-06 10:00:00: no local daemon found\n'))).toBe(
      'icecream: no compile job left this machine: no local iceccd answered (is it running? `systemctl status iceccd`); 2 compiled here because no local iceccd answered',
    );
    expect(describeJobs(countClientJobs('ICECC[8238] 2026-12-06 10:36:26: building myself, but telling localhost\n'))).toBe(
      'icecream: no compile job left this machine: the scheduler sent no job to another host; 1 given back to this machine by the scheduler',
    );
  });

  it('counts finished jobs per server in the scheduler\'s log, not failed ones', () => {
    const log = [
      '[11394] 2026-12-06 10:42:06: END 2 status=0 in=22653(20%) out=808(100%) real=114 user=23 sys=18 pfaults=1388 server=daemon-a',
      '[11394] 2026-12-06 10:42:07: END 3 status=0 in=22653(20%) out=808(100%) real=143 user=16 sys=28 pfaults=1385 server=daemon-b',
      '[11394] 2026-12-06 10:42:07: END 4 status=1 in=22653(20%) out=808(100%) real=143 user=16 sys=28 pfaults=1385 server=daemon-b',
      '[11394] 2026-12-06 10:42:10: END 18 status=118',
      '[11394] 2026-12-06 10:42:06: BEGIN: 2 client=client-c(x86_64) server=daemon-a(x86_64)',
    ].join('\n');
    expect(countSchedulerJobs(log)).toEqual({ 'daemon-a': 1, 'daemon-b': 2 });
  });
});

describe('ensureIceccEnv', () => {
  const tmp = useTmpDirs();

  /** Stand-ins for gcc, cc1, as and icecc-create-env (the real one takes 20 s and a real toolchain; test/icecc-cluster.test.ts uses it). */
  async function toolchain(): Promise<{ bin: string; cc1: string; made: string }> {
    const root = await tmp();
    const bin = join(root, 'bin');
    await mkdir(bin);
    const cc1 = join(root, 'cc1');
    const made = join(root, 'made.count');
    const script = async (name: string, body: string) => {
      await writeFile(join(bin, name), `#!/bin/sh\n${body}\n`);
      await chmod(join(bin, name), 0o755);
    };
    await writeFile(cc1, 'cc1 v1');
    await script('aarch64-linux-gnu-gcc', `[ "$1" = -print-prog-name=cc1 ] && echo ${cc1}`);
    await script('aarch64-linux-gnu-as', 'exit 0');
    await script('icecc-create-env', `echo x >> ${made}; echo "adding file $1"; printf 'env of %s' "$1" > 0123abcd.tar.gz; echo 'creating 0123abcd.tar.gz'`);
    return { bin, cc1, made };
  }

  it('makes the environment once, pins its sha256, reuses it, and makes it again when the tarball or the compiler changed', async () => {
    const t = await toolchain();
    const cacheDir = await tmp();
    const lines: string[] = [];
    const path = `${t.bin}:/usr/bin:/bin`;
    const o = { arch: 'aarch64', crossCompile: 'aarch64-linux-gnu-', cacheDir, path, log: (l: string) => lines.push(l), run: (argv: string[], opts = {}) => run(argv, { ...opts, env: { PATH: path } }) };

    const first = await ensureIceccEnv(o);
    if (!first.ok) throw new Error(first.outcome.message);
    expect(first.env.made).toBe(true);
    expect(first.env.compiler).toBe(join(t.bin, 'aarch64-linux-gnu-gcc'));
    expect(first.env.identity.map((f) => f.path)).toEqual([join(t.bin, 'aarch64-linux-gnu-gcc'), t.cc1, join(t.bin, 'aarch64-linux-gnu-as')]);
    expect(await readFile(first.env.tarball, 'utf8')).toBe(`env of ${join(t.bin, 'aarch64-linux-gnu-gcc')}`);
    const pin = JSON.parse(await readFile(join(first.env.tarball, '..', 'pin.json'), 'utf8'));
    expect(pin).toMatchObject({ format: 'clawos-icecc-env', version: 1, arch: 'aarch64', tarball: '0123abcd.tar.gz', sha256: first.env.sha256 });
    expect(lines).toEqual([`icecream: made the aarch64 environment ${first.env.tarball} (sha256 ${first.env.sha256}) for ${first.env.compiler}`]);

    const again = await ensureIceccEnv(o);
    expect(again).toEqual({ ok: true, env: { ...first.env, made: false } });
    expect((await readFile(t.made, 'utf8')).split('\n').filter(Boolean)).toHaveLength(1);

    // A tarball that no longer hashes to its pin is never used: made again.
    await writeFile(first.env.tarball, 'tampered');
    lines.length = 0;
    const remade = await ensureIceccEnv(o);
    if (!remade.ok) throw new Error(remade.outcome.message);
    expect(remade.env).toMatchObject({ made: true, sha256: first.env.sha256, tarball: first.env.tarball });
    expect(lines[0]).toMatch(new RegExp(`^icecream: ${first.env.tarball} hashes to [0-9a-f]{64}, not the pinned ${first.env.sha256}: making it again$`));

    // Another cc1: another environment, pinned beside the first.
    await writeFile(t.cc1, 'cc1 v2');
    const other = await ensureIceccEnv(o);
    if (!other.ok) throw new Error(other.outcome.message);
    expect(other.env.made).toBe(true);
    expect(join(other.env.tarball, '..')).not.toBe(join(first.env.tarball, '..'));
  });

  it('is an INFRA_ERROR naming the missing compiler', async () => {
    const cacheDir = await tmp();
    const r = await ensureIceccEnv({ arch: 'aarch64', crossCompile: 'nonesuch-', cacheDir, path: '/nonexistent', log: () => {}, run: (a, opts) => run(a, opts) });
    expect(r).toEqual({ ok: false, outcome: { status: 'INFRA_ERROR', reason: 'infra', message: 'icecream: no toolchain environment for aarch64: nonesuch-gcc is not on PATH' } });
  });
});
