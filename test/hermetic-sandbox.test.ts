/**
 * The sandbox with REAL bubblewrap: what a task may write, whether it has a
 * network, what the diagnosis says when it breaks a rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { run, type RunOptions } from '../lib/proc.js';
import {
  diagnoseSandboxFailure,
  probeSandbox,
  sandboxRecord,
  sandboxWrapper,
  ViolationWatch,
  NO_SANDBOX,
  type SandboxMode,
  type SandboxPolicy,
} from '../lib/sandbox.js';

let tmp: DirectoryResult;
let mode: SandboxMode;
let build: string;
let outDir: string;
let cacheDir: string;
let repo: string;

beforeAll(async () => {
  mode = await probeSandbox();
  tmp = await tmpDir({ unsafeCleanup: true });
  repo = join(tmp.path, 'repo');
  build = join(tmp.path, 'build');
  outDir = join(build, 'build-engineer', 'x86_64');
  cacheDir = join(build, 'cache');
  await mkdir(join(build, 'kernel-engineer'), { recursive: true });
  await mkdir(repo, { recursive: true });
  await writeFile(join(repo, 'input.txt'), 'from the repo\n');
});
afterAll(async () => {
  await tmp?.cleanup();
});

function policy(extra: Partial<SandboxPolicy> = {}): SandboxPolicy {
  return { task: 'G-05@x86_64', outDir, readOnly: [repo, build], network: false, specFile: 'tasks/G-05.yaml', ...extra };
}

/** Run a bash command the way the scheduler's ctx.run will: sandboxed, cwd = the output dir. */
async function sandboxed(script: string, p: SandboxPolicy = policy(), opts: RunOptions = {}) {
  const watch = new ViolationWatch(p);
  const lines: string[] = [];
  const r = await run(['bash', '-c', script], {
    cwd: p.outDir,
    wrap: sandboxWrapper(mode, p),
    sink: (stream, line) => {
      lines.push(`${stream}: ${line}`);
      if (stream !== 'meta') watch.line(line);
    },
    ...opts,
  });
  return { r, watch, lines };
}

describe('bubblewrap sandbox (real bwrap)', () => {
  it('the probe finds a working bwrap', () => {
    expect(mode.kind).toBe('bwrap');
    expect(mode.kind === 'bwrap' && mode.version).toMatch(/^\d+\.\d+/);
  });

  it('a write inside the output dir succeeds and lands on the host; /tmp is private', async () => {
    const { r } = await sandboxed('echo built > result.txt && echo scratch > /tmp/clawos-private && cat /tmp/clawos-private', policy(), {});
    expect(r.ok).toBe(true);
    expect(await readFile(join(outDir, 'result.txt'), 'utf8')).toBe('built\n');
    expect(existsSync('/tmp/clawos-private')).toBe(false);
  });

  it('a command run in a subdirectory of the output dir (a component\'s src/) can write there', async () => {
    const src = join(outDir, 'src');
    await mkdir(src, { recursive: true });
    const r = await run(['bash', '-c', 'echo built > hello && cat hello'], { cwd: src, wrap: sandboxWrapper(mode, policy()) });
    expect(r.ok).toBe(true);
    expect(await readFile(join(src, 'hello'), 'utf8')).toBe('built\n');
  });

  it('the repo and the rest of the build dir are readable, not writable', async () => {
    const { r } = await sandboxed(`cat ${join(repo, 'input.txt')}`);
    expect(r.ok).toBe(true);
    expect(r.tail).toEqual(['from the repo']);
  });

  it('touch outside the output dir (another agent\'s dir) fails, naming the path and RULE-001', async () => {
    const target = join(build, 'kernel-engineer', 'planted');
    const { r, watch } = await sandboxed(`touch ${target}`);
    expect(r.ok).toBe(false);
    expect(existsSync(target)).toBe(false);
    expect(r.tail).toEqual([`touch: cannot touch '${target}': Read-only file system`]);
    expect(watch.first?.message).toBe(
      `RULE-001: G-05@x86_64 wrote outside its output directory: ${target} (only ${outDir} and a private /tmp are writable)`,
    );
    expect(diagnoseSandboxFailure(policy(), r.tail)).toEqual(watch.first);
  });

  it('writes outside through other tools are diagnosed with the same rule and the resolved path', async () => {
    const cases: [string, string][] = [
      [`echo x > ${repo}/input.txt`, `${repo}/input.txt`],
      ['mkdir ../../escape', join(build, 'escape')],
      [`cp result.txt ${build}/copied.txt`, `${build}/copied.txt`],
      [`python3 -c 'open("/etc/clawos-planted", "w")'`, '/etc/clawos-planted'],
      [`node -e 'require("fs").writeFileSync("/usr/clawos-planted", "x")'`, '/usr/clawos-planted'],
      [`ln -s result.txt ${build}/link`, `${build}/link`],
    ];
    for (const [script, path] of cases) {
      const { r, watch } = await sandboxed(script);
      expect(r.ok, script).toBe(false);
      expect(watch.first?.rule, script).toBe('RULE-001');
      expect(watch.first?.path, `${script}: ${r.tail.join(' | ')}`).toBe(path);
    }
    expect(await readFile(join(repo, 'input.txt'), 'utf8')).toBe('from the repo\n');
    expect(await readdir(build)).toEqual(['build-engineer', 'kernel-engineer']);
  });

  it('an extra writable dir (the shared cache) is writable and named in the diagnosis', async () => {
    const p = policy({ writable: [cacheDir] });
    const ok = await sandboxed(`echo cached > ${cacheDir}/blob`, p);
    expect(ok.r.ok).toBe(true);
    expect(await readFile(join(cacheDir, 'blob'), 'utf8')).toBe('cached\n');
    const bad = await sandboxed(`touch ${build}/stray`, p);
    expect(bad.watch.first?.message).toBe(
      `RULE-001: G-05@x86_64 wrote outside its output directory: ${build}/stray (only ${outDir}, ${cacheDir} and a private /tmp are writable)`,
    );
  });

  it('has no capabilities: even as root it cannot remount / read-write', async () => {
    const { r } = await sandboxed('mount -o remount,rw / && touch /etc/clawos-remounted');
    expect(r.ok).toBe(false);
    expect(existsSync('/etc/clawos-remounted')).toBe(false);
    expect(r.tail.join('\n')).toMatch(/permission denied|must be superuser|Operation not permitted/i);
  });

  it('a connection without network: true is refused and diagnosed as RULE-006', async () => {
    const { r, watch } = await sandboxed('exec 3<>/dev/tcp/1.1.1.1/53');
    expect(r.ok).toBe(false);
    expect(r.tail).toEqual(['bash: connect: Network is unreachable', 'bash: line 1: /dev/tcp/1.1.1.1/53: Network is unreachable']);
    expect(watch.first?.message).toBe(
      'RULE-006: G-05@x86_64 reached for the network, but network: true is not declared in tasks/G-05.yaml, so its sandbox has none: bash: connect: Network is unreachable',
    );
  });

  it('a name lookup without network: true fails in the sandbox (getent, curl)', async () => {
    const getent = await sandboxed('getent hosts deb.debian.org');
    expect(getent.r.exitCode).toBe(2); // getent says nothing: the exit code is all there is
    const curl = await sandboxed('curl -sS --max-time 5 http://deb.debian.org/');
    expect(curl.r.ok).toBe(false);
    expect(curl.watch.first?.message).toBe(
      'RULE-006: G-05@x86_64 reached for the network, but network: true is not declared in tasks/G-05.yaml, so its sandbox has none: curl: (6) Could not resolve host: deb.debian.org',
    );
  });

  it('the sandbox has only lo without the declaration, and the host\'s interfaces with it', async () => {
    // /proc/net/dev lists the interfaces of the reader's network namespace (/sys would show the host's).
    const ifaces = (text: string) => text.split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean).sort();
    const host = ifaces(await readFile('/proc/net/dev', 'utf8'));
    const closed = await sandboxed('cat /proc/net/dev', policy(), { captureStdout: true });
    expect(ifaces(closed.r.stdout)).toEqual(['lo']);
    const open = await sandboxed('cat /proc/net/dev', policy({ network: true }), { captureStdout: true });
    expect(ifaces(open.r.stdout)).toEqual(host);
    expect(host.length).toBeGreaterThan(1);
    // Declared: the same connection is not refused by the sandbox (it may still fail for lack of internet).
    const tcp = await sandboxed('timeout 5 bash -c "exec 3<>/dev/tcp/1.1.1.1/53"; true', policy({ network: true }));
    expect(tcp.watch.first).toBeNull();
    expect(tcp.r.tail.join('\n')).not.toMatch(/Network is unreachable/);
  });

  it('the environment is explicit: only the inherited list and what the caller passes', async () => {
    process.env.CLAWOS_TEST_LEAK = 'must-not-leak';
    try {
      const { r } = await sandboxed('env | sort', policy(), { env: { CLAWOS_TASK: 'G-05@x86_64' }, captureStdout: true });
      const names = r.stdout.trim().split('\n').map((l) => l.split('=')[0]);
      expect(names).toContain('CLAWOS_TASK');
      expect(names).toContain('PATH');
      expect(names).not.toContain('CLAWOS_TEST_LEAK');
    } finally {
      delete process.env.CLAWOS_TEST_LEAK;
    }
  });

  it('a program missing inside the sandbox is a spawn error, as unsandboxed', async () => {
    const r = await run(['clawos-no-such-program'], { cwd: outDir, wrap: sandboxWrapper(mode, policy()) });
    expect(r.ok).toBe(false);
    expect(r.spawnError).toBe('clawos-no-such-program: command not found');
  });

  it('the reproducer is the whole bwrap command line, and pasting it reproduces the run', async () => {
    const lines: string[] = [];
    await run(['bash', '-c', 'echo pasted > pasted.txt'], { cwd: outDir, wrap: sandboxWrapper(mode, policy()), sink: (s, l) => s === 'meta' && lines.push(l) });
    const repro = lines[0]!;
    expect(repro).toMatch(new RegExp(`^\\$ cd ${outDir} && bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp .* --unshare-net --die-with-parent --new-session --cap-drop ALL --chdir ${outDir} --clearenv .*--setenv SHLVL 1 .* -- bash -c \\$'echo pasted > pasted.txt'$`));
    await writeFile(join(outDir, 'pasted.txt'), '');
    const again = await run(['bash', '-c', repro.slice(2)]);
    expect(again.ok).toBe(true);
    expect(await readFile(join(outDir, 'pasted.txt'), 'utf8')).toBe('pasted\n');
  });

  it('--no-sandbox is explicit and recorded', () => {
    expect(sandboxWrapper(NO_SANDBOX, policy())).toBeUndefined();
    expect(sandboxRecord(NO_SANDBOX, policy())).toEqual({ sandbox: 'off', sandbox_detail: '--no-sandbox', network: false, writable: [outDir] });
    expect(sandboxRecord(mode, policy({ network: true }))).toEqual({
      sandbox: 'bwrap',
      sandbox_detail: `bwrap ${mode.kind === 'bwrap' ? mode.version : ''}`,
      network: true,
      writable: [outDir],
    });
  });
});
