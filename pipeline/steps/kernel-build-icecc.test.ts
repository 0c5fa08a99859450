/**
 * kernel-build under --icecream, on the fake kernel: what make gets and what the
 * task records. The cluster itself is test/icecc-cluster.test.ts's; here a
 * stand-in icecc-create-env keeps it fast, and the client's log lines are
 * written where icecc would write them while "make" compiles.
 */
import { existsSync } from 'node:fs';
import { appendFile, chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hash.js';
import { run } from '../../lib/proc.js';
import { FAKE_KERNEL_PARENT, fakeStepContext, fakeX86Arch } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { ICECC_CLIENT_LOG, ICECC_FRONT, iceccFrontScript } from '../kernel/icecc.js';
import { kernelBuildStep } from './kernel-build.js';

const REPO = join(import.meta.dirname, '../..');
let work: DirectoryResult;
let repo: string;
const savedPath = process.env.PATH;

beforeAll(async () => {
  work = await dir({ unsafeCleanup: true });
  const tarball = join(work.path, 'linux-fake.tar.xz');
  expect((await run(['tar', '-cJf', tarball, '-C', FAKE_KERNEL_PARENT, 'linux-fake'])).ok).toBe(true);
  repo = join(work.path, 'repo');
  await mkdir(join(repo, 'kernel-config'), { recursive: true });
  await cp(join(REPO, 'kernel-config/modules'), join(repo, 'kernel-config/modules'), { recursive: true });
  await writeFile(join(repo, 'kernel-config/source.yaml'), `tarball: ${tarball}\nsha256: ${await sha256File(tarball)}\nbase: tinyconfig\nfragments:\n  - kernel-config/common.config\n`);
  await writeFile(join(repo, 'kernel-config/common.config'), 'CONFIG_MODULES=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_LOCALVERSION="-clawos"\n');
  await writeFile(join(repo, 'kernel-config/x86_64.config'), 'CONFIG_FAKE_X86_ONLY=y\n');
  // The real one takes 20 s; its output is what matters here: a tarball and the line naming it.
  const bin = join(work.path, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'icecc-create-env'), "#!/bin/sh\nprintf 'env of %s' \"$1\" > 5eed.tar.gz\necho 'creating 5eed.tar.gz'\n");
  await chmod(join(bin, 'icecc-create-env'), 0o755);
  process.env.PATH = `${bin}:${savedPath}`;
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await work.cleanup();
});

describe('kernelBuildStep with --icecream', () => {
  it('compiles with CC=<front> gcc … at the cluster\'s -j, with the pinned environment, and records the jobs per host', async () => {
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: join(work.path, 'build-1'), arch: fakeX86Arch });
    ctx.icecream = { jobs: 7 };
    const run0 = ctx.run;
    ctx.run = async (argv, opts = {}) => {
      const log = opts.env?.ICECC_LOGFILE;
      // What icecc's client logs when the scheduler sends jobs away (test/icecc-cluster.test.ts has the real thing).
      if (log && argv.includes('-j7')) {
        await appendFile(
          log,
          'ICECC[101] 2026-12-06 10:44:20: Have to use host 10.0.0.2:10245 - Job ID: 1 - env: x86_64 - has env: false - match j: 0\n' +
            'ICECC[102] 2026-12-06 10:44:20: Have to use host 10.0.0.3:10245 - Job ID: 2 - env: x86_64 - has env: false - match j: 0\n' +
            'ICECC[103] 2026-12-06 10:44:21: Have to use host 10.0.0.2:10245 - Job ID: 3 - env: x86_64 - has env: true - match j: 1\n',
        );
      }
      return run0(argv, opts);
    };
    const o = await kernelBuildStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(o.message).toMatch(/ \(\d+ s\); icecream: 3 compile job\(s\) on 2 host\(s\) \(10\.0\.0\.2 2, 10\.0\.0\.3 1\)$/);

    const info = JSON.parse(await readFile(join(ctx.outDir, 'build-info.json'), 'utf8'));
    const envDir = join(ctx.cacheDir, 'icecc-env/x86_64');
    const tarball = info.icecream.env.tarball as string;
    expect(tarball.startsWith(`${envDir}/`) && tarball.endsWith('/5eed.tar.gz')).toBe(true);
    expect(info.icecream).toEqual({
      env: { arch: 'x86_64', compiler: info.icecream.env.compiler, tarball, sha256: await sha256File(tarball), made: true },
      jobs: { remote: { '10.0.0.2': 2, '10.0.0.3': 1 }, local: 0, redone: 0, noDaemon: 0, kept: 0 },
    });
    // The cluster's kernel is the local build's bytes (docs/decisions.md): as reproducible as the build itself.
    expect(o.data).toMatchObject({ icecream: info.icecream, reproducible: info.reproducible });
    expect(info.env).toMatchObject({ ICECC_VERSION: tarball, ICECC_DEBUG: 'debug', ICECC_LOGFILE: join(ctx.outDir, 'obj', ICECC_CLIENT_LOG) });
    // Every make has the compiler through icecc; the compile runs at the cluster's -j.
    const makes = (info.commands as { phase: string; command: string }[]).filter((c) => / make -C /.test(c.command));
    const front = join(ctx.outDir, 'obj', ICECC_FRONT);
    for (const c of makes) expect(c.command).toContain(` $'CC=${front} gcc -gno-record-gcc-switches'`);
    expect(await readFile(front, 'utf8')).toBe(iceccFrontScript());
    expect(makes.find((c) => c.phase === 'compile')!.command).toMatch(/ -j7$/);
    // The client log is read and removed after each make.
    expect(existsSync(join(ctx.outDir, 'obj', ICECC_CLIENT_LOG))).toBe(false);
    expect(ctx.logs).toContain(`icecream: made environment ${tarball} sha256 ${info.icecream.env.sha256}`);
    expect(ctx.logs).toContain('icecream: 3 compile job(s) on 2 host(s) (10.0.0.2 2, 10.0.0.3 1)');
  });

  it('reuses the pinned environment and says once when no job left this machine', async () => {
    const build = join(work.path, 'build-2');
    const first = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    first.icecream = { jobs: 3 };
    expect((await kernelBuildStep.run(first)).status).toBe('PASS');
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    ctx.icecream = { jobs: 3 };
    const o = await kernelBuildStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(o.message).toMatch(/ \(\d+ s\); icecream: no compile job left this machine: the scheduler sent no job to another host$/);
    const info = JSON.parse(await readFile(join(ctx.outDir, 'build-info.json'), 'utf8'));
    expect(info.icecream.env.made).toBe(false);
    expect(ctx.logs.filter((l) => l.startsWith('icecream: no compile job left this machine'))).toEqual([
      'icecream: no compile job left this machine: the scheduler sent no job to another host',
    ]);
  });

  it('with the compiler cache on as well, compiles through icecc alone and says so once', async () => {
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: join(work.path, 'build-3'), arch: fakeX86Arch });
    ctx.icecream = { jobs: 3 };
    ctx.compilerCache = { ccache: '/usr/bin/ccache', env: { CCACHE_DIR: join(work.path, 'ccache') } };
    const o = await kernelBuildStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(ctx.logs.filter((l) => l.startsWith('compiler cache:'))).toEqual(['compiler cache: not used with --icecream (the compiles go to the cluster)']);
    const info = JSON.parse(await readFile(join(ctx.outDir, 'build-info.json'), 'utf8'));
    const makes = (info.commands as { command: string }[]).filter((c) => / make -C /.test(c.command));
    for (const c of makes) {
      expect(c.command).toContain(` $'CC=${join(ctx.outDir, 'obj', ICECC_FRONT)} gcc -gno-record-gcc-switches'`);
      expect(c.command).not.toContain('CCACHE_');
    }
  });
});
