import { describe, expect, it } from 'vitest';
import { InfraError } from './errors.js';
import { run, type RunOptions, type RunResult } from './proc.js';
import { bwrapArgv, diagnoseLine, pathOfReadOnlyError, probeFailureHint, probeSandbox, sandboxEnv, type SandboxPolicy } from './sandbox.js';

const policy: SandboxPolicy = {
  task: 'A-01@x86_64',
  outDir: '/b/kernel-engineer/x86_64',
  writable: ['/b/cache'],
  readOnly: ['/repo', '/b'],
  network: false,
  devices: ['/dev/kvm'],
  specFile: 'tasks/A-01.yaml',
};

describe('bwrapArgv', () => {
  it('read-only root, private /dev /proc /tmp, read-only project, writable out dir and cache, no net, no caps', () => {
    expect(bwrapArgv('bwrap', policy, { argv: ['make', '-j2'], cwd: '/b/kernel-engineer/x86_64', env: { PATH: '/usr/bin', CLAWOS_TASK: 'A-01@x86_64' } })).toEqual([
      'bwrap',
      '--ro-bind', '/', '/',
      '--dev', '/dev',
      '--proc', '/proc',
      '--tmpfs', '/tmp',
      '--ro-bind', '/b', '/b',
      '--ro-bind', '/repo', '/repo',
      '--bind', '/b/cache', '/b/cache',
      '--dev-bind', '/dev/kvm', '/dev/kvm',
      '--bind', '/b/kernel-engineer/x86_64', '/b/kernel-engineer/x86_64',
      '--unshare-pid', '--unshare-ipc', '--unshare-net',
      '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
      '--chdir', '/b/kernel-engineer/x86_64',
      '--clearenv', '--setenv', 'CLAWOS_TASK', 'A-01@x86_64', '--setenv', 'PATH', '/usr/bin',
      '--', 'make', '-j2',
    ]);
  });

  it('keeps the network namespace when network is declared', () => {
    const argv = bwrapArgv('bwrap', { ...policy, network: true }, { argv: ['true'], env: {} });
    expect(argv).not.toContain('--unshare-net');
    expect(argv).toContain('--unshare-pid');
  });

  it('the cwd is bound read-only only when no other binding holds it', () => {
    const mountsOf = (argv: string[]) => argv.slice(argv.indexOf('/tmp') + 1, argv.indexOf('--unshare-pid'));
    const p: SandboxPolicy = { task: 't', outDir: '/b/x', readOnly: ['/b'], network: false };
    // Inside the output dir (a component's src/): stays writable.
    expect(mountsOf(bwrapArgv('bwrap', p, { argv: ['make'], cwd: '/b/x/src', env: {} }))).toEqual(['--ro-bind', '/b', '/b', '--bind', '/b/x', '/b/x']);
    expect(mountsOf(bwrapArgv('bwrap', p, { argv: ['make'], cwd: '/tmp/elsewhere', env: {} }))).toEqual([
      '--ro-bind', '/b', '/b',
      '--ro-bind', '/tmp/elsewhere', '/tmp/elsewhere',
      '--bind', '/b/x', '/b/x',
    ]);
  });

  it('a deeper binding is mounted after the one it lies in, whatever the order given', () => {
    const argv = bwrapArgv('bwrap', { task: 't', outDir: '/b/x', writable: [], readOnly: ['/b/x/inner-ro', '/b'], network: false }, { argv: ['true'], env: {} });
    const mounts = argv.slice(argv.indexOf('/tmp') + 1, argv.indexOf('--unshare-pid'));
    expect(mounts).toEqual(['--ro-bind', '/b', '/b', '--bind', '/b/x', '/b/x', '--ro-bind', '/b/x/inner-ro', '/b/x/inner-ro']);
  });
});

describe('sandboxEnv', () => {
  const parent = { PATH: '/usr/bin', HOME: '/root', LANG: 'C.UTF-8', GITHUB_TOKEN: 'secret', SSH_AUTH_SOCK: '/run/agent', https_proxy: 'http://proxy:3128' };
  it('inherits only the short list, never tokens or agents; the caller adds and removes', () => {
    expect(sandboxEnv({ network: false }, { CLAWOS_OUT: '/b/x', HOME: undefined }, parent)).toEqual({ SHLVL: '1', PATH: '/usr/bin', LANG: 'C.UTF-8', CLAWOS_OUT: '/b/x' });
  });
  it('passes proxy settings only to tasks that declare network', () => {
    expect(sandboxEnv({ network: true }, {}, parent)).toEqual({ SHLVL: '1', PATH: '/usr/bin', HOME: '/root', LANG: 'C.UTF-8', https_proxy: 'http://proxy:3128' });
  });
});

describe('diagnosis of a failed sandboxed command', () => {
  // Lines as printed in the sandbox by the tools named (recorded from real runs on Debian 12).
  const cases: [string, string | null][] = [
    ["touch: cannot touch '/etc/x': Read-only file system", '/etc/x'],
    ['bash: line 1: /repo/input.txt: Read-only file system', '/repo/input.txt'],
    ["mkdir: cannot create directory ‘../escape’: Read-only file system", '../escape'],
    ["cp: cannot create regular file '/b/copied.txt': Read-only file system", '/b/copied.txt'],
    ["OSError: [Errno 30] Read-only file system: '/etc/clawos-planted'", '/etc/clawos-planted'],
    ["Error: EROFS: read-only file system, open '/usr/clawos-planted'", '/usr/clawos-planted'],
    ['/usr/bin/ld: cannot open output file /etc/a.out: Read-only file system', '/etc/a.out'],
    ['/usr/bin/ld: cannot open output file hello: Read-only file system', 'hello'],
    ['write error: Read-only file system', null],
  ];
  for (const [line, path] of cases) {
    it(`finds the path in: ${line}`, () => {
      expect(pathOfReadOnlyError(line)).toBe(path);
    });
  }

  it('a line that only names the EROFS file system is no write error (busybox\'s Kconfig, seen in a real Buildroot build)', () => {
    expect(diagnoseLine(policy, 'erofs filesystem (FEATURE_VOLUMEID_EROFS) [Y/n/?] y')).toBeNull();
    expect(diagnoseLine(policy, 'Support for EROFS filesystems (EROFS_FS) [N/m/y/?] n')).toBeNull();
    expect(diagnoseLine(policy, "Error: EROFS: read-only file system, open '/usr/x'")?.path).toBe('/usr/x');
  });

  it('RULE-001 resolves a relative path against the command\'s directory', () => {
    expect(diagnoseLine(policy, "mkdir: cannot create directory ‘../escape’: Read-only file system", '/b/kernel-engineer/x86_64')).toEqual({
      rule: 'RULE-001',
      path: '/b/kernel-engineer/escape',
      line: "mkdir: cannot create directory ‘../escape’: Read-only file system",
      message: 'RULE-001: A-01@x86_64 wrote outside its output directory: /b/kernel-engineer/escape (only /b/kernel-engineer/x86_64, /b/cache and a private /tmp are writable)',
    });
    expect(diagnoseLine(policy, 'write error: Read-only file system')?.message).toBe(
      'RULE-001: A-01@x86_64 wrote outside its output directory: (no path named) write error: Read-only file system (only /b/kernel-engineer/x86_64, /b/cache and a private /tmp are writable)',
    );
  });

  // Real outputs of network clients in a sandbox without network (bash /dev/tcp, curl, wget, node, git, apt-get download).
  const network = [
    'bash: connect: Network is unreachable',
    'curl: (6) Could not resolve host: deb.debian.org',
    "curl: (7) Failed to connect to 1.1.1.1 port 80 after 0 ms: Couldn't connect to server",
    'Resolving deb.debian.org (deb.debian.org)... failed: Temporary failure in name resolution.',
    'Error: getaddrinfo EAI_AGAIN deb.debian.org',
    'Error: connect ENETUNREACH 1.1.1.1:53 - Local (0.0.0.0:0)',
    "fatal: unable to access 'https://github.com/torvalds/linux/': Could not resolve host: github.com",
    "  Temporary failure resolving 'deb.debian.org'",
    "E: Failed to fetch http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb  Temporary failure resolving 'deb.debian.org'",
  ];
  for (const line of network) {
    it(`RULE-006 for: ${line.trim()}`, () => {
      expect(diagnoseLine(policy, line)?.message).toBe(
        `RULE-006: A-01@x86_64 reached for the network, but network: true is not declared in tasks/A-01.yaml, so its sandbox has none: ${line.trim()}`,
      );
      expect(diagnoseLine({ ...policy, network: true }, line)).toBeNull();
    });
  }

  it('ordinary failure output is not a violation', () => {
    expect(diagnoseLine(policy, 'make: *** [Makefile:3: all] Error 2')).toBeNull();
    expect(diagnoseLine(policy, 'grep: x.txt: No such file or directory')).toBeNull();
  });
});

describe('probeSandbox (real bwrap)', () => {
  /** Runs the probe's commands inside an outer sandbox that forbids what the inner one needs. */
  const inside = (outer: string[]) => (argv: string[], opts?: RunOptions): Promise<RunResult> => run([...outer, '--', ...argv], opts);
  const OUTER = ['bwrap', '--unshare-user', '--disable-userns', '--cap-drop', 'ALL', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];

  it('passes here and reports the version', async () => {
    const mode = await probeSandbox();
    expect(mode).toMatchObject({ kind: 'bwrap', bwrap: 'bwrap' });
  });

  it('bwrap missing: InfraError saying to install bubblewrap', async () => {
    const err = await probeSandbox({ bwrap: '/nonexistent/bwrap' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).message).toBe('bubblewrap is not installed (/nonexistent/bwrap not found); every task runs under it');
    expect((err as InfraError).hint).toBe(
      'apt-get install bubblewrap (it is in specs/host-packages.txt, so bin/bootstrap installs it); or, to run unconfined, pass --no-sandbox (recorded in every task event)',
    );
  });

  it('namespaces refused (root without capabilities, as in a locked-down container): InfraError with the fix', async () => {
    const err = await probeSandbox({ run: inside(OUTER) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).message).toBe('bubblewrap cannot create the task sandbox: bwrap: Creating new namespace failed: Operation not permitted');
    expect((err as InfraError).hint).toMatch(/^namespaces are refused to this process .*run clawos-build as root on the host.*kernel\.unprivileged_userns_clone=1.*--no-sandbox/);
  });

  it('user namespaces unavailable to a non-root user (max_user_namespaces reached): InfraError with the sysctl', async () => {
    const err = await probeSandbox({ run: inside([...OUTER, '--uid', '1000', '--gid', '1000']) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).message).toBe(
      'bubblewrap cannot create the task sandbox: bwrap: Creating new namespace failed: nesting depth or /proc/sys/user/max_*_namespaces exceeded (ENOSPC)',
    );
    expect((err as InfraError).hint).toMatch(/^user namespaces are limited .*sysctl -w user\.max_user_namespaces=15000.*or run clawos-build as root/);
  });

  it("Debian's kernel.unprivileged_userns_clone=0 message (bwrap 0.8.0's own text) gets the sysctl that fixes it", () => {
    const said = [
      'bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces. See <https://deb.li/bubblewrap> or <file:///usr/share/doc/bubblewrap/README.Debian.gz>.',
    ];
    expect(probeFailureHint(said)).toBe(
      'this kernel does not allow unprivileged user namespaces: run `sysctl -w kernel.unprivileged_userns_clone=1` (persist it in /etc/sysctl.d/), or run clawos-build as root; or, to run unconfined, pass --no-sandbox (recorded in every task event)',
    );
  });
});
