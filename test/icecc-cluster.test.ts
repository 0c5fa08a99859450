/**
 * Distributed kernel compiles, for real: an icecc-scheduler and two iceccd in
 * network namespaces (test/helpers/icecc-cluster.ts), real objects of the locked
 * Linux 6.12 source compiled for x86_64 and cross for aarch64 through them with
 * the argv, environment and pinned toolchain environments pipeline/kernel/icecc.ts
 * gives the kernel build (with -g, as the ClawOS kernel has debug info for BTF),
 * and compared byte for byte with the same objects compiled locally. The
 * scheduler's log says which daemon compiled what. Then the same compile inside
 * the task sandbox: with the network --icecream keeps it reaches a daemon, under
 * --unshare-net it cannot.
 */
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../lib/proc.js';
import { bwrapArgv, sandboxEnv } from '../lib/sandbox.js';
import { kbuildCompiler, kbuildEnv } from '../pipeline/kernel/build-env.js';
import { countClientJobs, countSchedulerJobs, ensureIceccEnv, iceccClientEnv, iceccFrontScript, iceccMakeVars, KEPT_HERE } from '../pipeline/kernel/icecc.js';
import { iceccClusterUnavailable, startIceccCluster, type IceccCluster } from './helpers/icecc-cluster.js';
import { lockedKernelTarball } from './helpers/kernel-tarball.js';

const skip = iceccClusterUnavailable();
// printk.c defines CREATE_TRACE_POINTS: the front compiles it here (pipeline/kernel/icecc.ts iceccFrontScript).
const KEPT = 'kernel/printk/printk.o';
const OBJECTS = ['lib/ctype.o', 'lib/sort.o', 'lib/string.o', 'lib/bsearch.o', 'lib/cmdline.o', 'lib/kstrtox.o', 'lib/hexdump.o', 'lib/vsprintf.o', 'lib/bitmap.o', 'lib/find_bit.o', 'lib/idr.o', 'lib/rbtree.o'];
// With debug info, as the ClawOS kernel has it (BTF).
const KCFLAGS = 'KCFLAGS=-g';
const ARCHES = [
  { name: 'x86_64', makeArch: 'x86_64', cross: '' },
  { name: 'aarch64', makeArch: 'arm64', cross: 'aarch64-linux-gnu-' },
] as const;

let cluster: IceccCluster | undefined;
let work: DirectoryResult | undefined;
let src = '';

// When it cannot run here its title says why; CI's step 1 fails on the skip (.ci/run).
describe.skipIf(skip)(`kernel objects through a real icecream cluster${skip ? ` (cannot run here: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    // Unpacked while the cluster comes up.
    work = await dir({ unsafeCleanup: true });
    const tarball = lockedKernelTarball();
    tarball.catch(() => {}); // awaited below, after the cluster is up
    cluster = await startIceccCluster();
    const x = await run(['tar', '-xJf', await tarball, '-C', work.path]);
    if (!x.ok) throw new Error(`tar: ${x.tail.join(' / ')}`);
    src = join(work.path, 'linux-source-6.12');
  }, 600_000);

  afterAll(async () => {
    await cluster?.stop();
    await work?.cleanup();
  }, 120_000);

  it.each(ARCHES)('$name: jobs ran on both daemons, and every object is the bytes of a local compile', async (arch) => {
    const w = work!.path;
    const obj = join(w, `obj-${arch.name}`);
    const env = kbuildEnv(1763683200);
    const make = ['make', '-s', '-C', src, `O=${obj}`, `ARCH=${arch.makeArch}`, `CROSS_COMPILE=${arch.cross}`, KCFLAGS];
    const ok = async (argv: string[], extraEnv: Record<string, string> = {}) => {
      const r = await run(argv, { env: { ...env, ...extraEnv }, tailLines: 40 });
      expect(r.ok, `${r.reproducer}\n${r.tail.join('\n')}`).toBe(true);
    };

    // Local: the compiler as the kernel build runs it without --icecream.
    const localCC = kbuildCompiler(arch.cross);
    await ok([...make, localCC, 'tinyconfig']);
    await ok([...make, localCC, '-j2', ...OBJECTS, KEPT]);
    const local = join(w, `local-${arch.name}`);
    await mkdir(local);
    for (const o of [...OBJECTS, KEPT]) {
      await copyFile(join(obj, o), join(local, o.replaceAll('/', '_')));
      await rm(join(obj, o));
    }

    // The toolchain environment, made by icecc-create-env and pinned; asked again, the pinned one.
    const cacheDir = join(w, 'cache');
    const lines: string[] = [];
    const e = await ensureIceccEnv({ arch: arch.name, crossCompile: arch.cross, cacheDir, run: (a, o) => run(a, o), log: (l) => lines.push(l) });
    if (!e.ok) throw new Error(e.outcome.message);
    expect(e.env.made).toBe(true);
    const again = await ensureIceccEnv({ arch: arch.name, crossCompile: arch.cross, cacheDir, run: (a, o) => run(a, o), log: (l) => lines.push(l) });
    expect(again).toEqual({ ok: true, env: { ...e.env, made: false } });

    // Through the cluster: the client in its namespace, next to a local daemon that takes no job.
    const before = (await cluster!.schedulerLog()).length;
    const logFile = join(w, `icecc-${arch.name}.log`);
    const front = join(w, `icecc-front-${arch.name}`);
    await writeFile(front, iceccFrontScript(), { mode: 0o755 });
    await ok(cluster!.client([...make, ...iceccMakeVars(arch.cross, front), '-j4', ...OBJECTS, KEPT]), iceccClientEnv({ tarball: e.env.tarball, crossCompile: arch.cross, logFile }));

    const byServer = countSchedulerJobs((await cluster!.schedulerLog()).slice(before));
    const byHost = countClientJobs(await readFile(logFile, 'utf8')).remote;
    console.log(`${arch.name}: scheduler END per server ${JSON.stringify(byServer)}, client jobs per host ${JSON.stringify(byHost)}, environment ${e.env.tarball} sha256 ${e.env.sha256}`);
    expect(Object.keys(byServer).sort()).toEqual(['daemon-a', 'daemon-b']);
    expect(Object.keys(byHost).sort()).toEqual(cluster!.daemons.map((d) => d.address).sort());
    for (const o of [...OBJECTS, KEPT]) {
      const [a, b] = await Promise.all([readFile(join(obj, o)), readFile(join(local, o.replaceAll('/', '_')))]);
      expect(a.equals(b), `${arch.name} ${o}: ${a.length} bytes through the cluster, ${b.length} locally`).toBe(true);
    }
    // Without -gno-record-gcc-switches the daemon's own switches land in DW_AT_producer: not the same bytes.
    if (arch.name === 'x86_64') {
      await ok([...make, 'CC=gcc', 'lib/sort.o']);
      const here = await readFile(join(obj, 'lib/sort.o'));
      await ok(cluster!.client([...make, 'CC=icecc gcc', 'lib/sort.o']), iceccClientEnv({ tarball: e.env.tarball, crossCompile: arch.cross, logFile: join(w, 'icecc-plain-g.log') }));
      expect(countClientJobs(await readFile(join(w, 'icecc-plain-g.log'), 'utf8')).remote, 'lib/sort.o with plain -g went to a daemon').not.toEqual({});
      expect((await readFile(join(obj, 'lib/sort.o'))).equals(here), 'lib/sort.o with plain -g, remote vs local').toBe(false);
    }
    // Each kernel object itself went to a daemon, not back to this machine; printk.o never reached icecc.
    const log = await readFile(logFile, 'utf8');
    expect(log.split('\n').filter((l) => l.startsWith(KEPT_HERE))).toEqual([`${KEPT_HERE}${join(src, 'kernel/printk/printk.c')}`]);
    expect(countClientJobs(log).kept).toBe(1);
    expect(log).not.toMatch(/: invoked as: icecc [^\n]* -o kernel\/printk\/printk\.o /);
    for (const o of OBJECTS) {
      const pid = new RegExp(`^ICECC\\[(\\d+)\\] [^\\n]*: invoked as: icecc [^\\n]* -o ${o.replace('.', '\\.')} `, 'm').exec(log)?.[1];
      expect(pid, `${o} was compiled through icecc`).toBeDefined();
      expect(log, `${o} went to a daemon`).toMatch(new RegExp(`^ICECC\\[${pid}\\] [^\\n]*: Have to use host `, 'm'));
    }
  }, 900_000);

  it('inside the task sandbox: with the network --icecream keeps, the job goes to a daemon; under --unshare-net it cannot', async () => {
    const w = work!.path;
    const obj = join(w, 'obj-x86_64');
    const e = await ensureIceccEnv({ arch: 'x86_64', crossCompile: '', cacheDir: join(w, 'cache'), run: (a, o) => run(a, o), log: () => {} });
    if (!e.ok) throw new Error(e.outcome.message);
    expect(e.env.made).toBe(false);
    const counts: Record<string, ReturnType<typeof countClientJobs>> = {};
    for (const network of [true, false]) {
      await rm(join(obj, 'lib/sort.o'), { force: true });
      const logFile = join(obj, `icecc-sandbox-${network}.log`);
      const env = { ...kbuildEnv(1763683200), ...iceccClientEnv({ tarball: e.env.tarball, crossCompile: '', logFile }) };
      // The policy kernel-build's instance gets (pipeline/run/instance.ts): the object dir writable, the rest read-only.
      const argv = bwrapArgv('bwrap', { task: 'A-01@x86_64', outDir: obj, readOnly: [w], network }, {
        argv: ['make', '-s', '-C', src, `O=${obj}`, 'ARCH=x86_64', 'CROSS_COMPILE=', KCFLAGS, ...iceccMakeVars('', join(w, 'icecc-front-x86_64')), 'lib/sort.o'],
        env: sandboxEnv({ network }, env),
      });
      const r = await run(cluster!.client(argv), { tailLines: 40 });
      expect(r.ok, r.tail.join('\n')).toBe(true);
      counts[String(network)] = countClientJobs(await readFile(logFile, 'utf8'));
      const [a, b] = await Promise.all([readFile(join(obj, 'lib/sort.o')), readFile(join(w, 'local-x86_64', 'lib_sort.o'))]);
      expect(a.equals(b), `lib/sort.o in the sandbox (network ${network})`).toBe(true);
    }
    console.log(`sandboxed lib/sort.o: with network ${JSON.stringify(counts.true)}, without ${JSON.stringify(counts.false)}`);
    expect(Object.keys(counts.true!.remote).length).toBeGreaterThan(0);
    expect(counts.false!.remote).toEqual({});
    expect(counts.false!.noDaemon).toBeGreaterThan(0);
  }, 600_000);
});

