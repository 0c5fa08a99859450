import { describe, expect, it } from 'vitest';
import { run, reproducer, type CommandWrapper } from './proc.js';
import { Redactor } from './redact.js';

describe('run', () => {
  it('logs a pasteable reproducer, then the output line by line, then the exit', async () => {
    const lines: string[] = [];
    const r = await run(['bash', '-c', 'echo out; echo err >&2; exit 4'], { cwd: '/tmp', env: { X: 'a b' }, sink: (s, l) => lines.push(`${s}: ${l}`) });
    expect(lines[0]).toBe("meta: $ cd /tmp && env $'X=a b' bash -c $'echo out; echo err >&2; exit 4'");
    expect(lines.slice(1, 3).sort()).toEqual(['stderr: err', 'stdout: out']);
    expect(lines[3]).toMatch(/^meta: clawos-build: exit=4 signal=- \d+\.\d s$/);
    expect(r).toMatchObject({ exitCode: 4, ok: false, timedOut: false, aborted: false, spawnError: undefined });
  });

  it('a missing program is a spawn error', async () => {
    const r = await run(['clawos-no-such-program']);
    expect(r.spawnError).toBe('clawos-no-such-program: command not found');
  });
});

describe('run with a wrapper', () => {
  // A real wrapper: start the command under env(1) with a cleared environment.
  const underEnv: CommandWrapper = (cmd) => ({
    argv: ['env', '-i', ...Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`), 'PATH=/usr/bin:/bin', ...cmd.argv],
    env: {},
    cwd: cmd.cwd,
    spawnError: (code, tail) => (code === 127 && tail.some((l) => l.includes('No such file')) ? `${cmd.argv[0]}: command not found` : undefined),
  });

  it('starts the wrapped command, and the reproducer is what really ran', async () => {
    const lines: string[] = [];
    const r = await run(['bash', '-c', 'echo "$X-$HOME"'], { env: { X: 'x' }, wrap: underEnv, captureStdout: true, sink: (s, l) => s === 'meta' && lines.push(l) });
    expect(r.ok).toBe(true);
    expect(r.stdout).toBe('x-\n'); // HOME did not get through env -i
    expect(r.argv).toEqual(['bash', '-c', 'echo "$X-$HOME"']);
    expect(r.reproducer).toBe(`env -i X=x PATH=/usr/bin:/bin bash -c $'echo "$X-$HOME"'`);
    expect(lines[0]).toBe(`$ ${r.reproducer}`);
  });

  it("the wrapper's own report of an unstartable program becomes a spawn error", async () => {
    const r = await run(['clawos-no-such-program'], { wrap: underEnv });
    expect(r.exitCode).toBe(127);
    expect(r.spawnError).toBe('clawos-no-such-program: command not found');
  });
});

describe('run with redaction', () => {
  it('redacts the reproducer, every line, and the tail, but not the captured data', async () => {
    const red = new Redactor().add('TOKEN', 'hunter2-secret');
    const lines: string[] = [];
    const r = await run(['bash', '-c', 'echo "t=$T"; echo "t=$T" >&2', 'x'], {
      env: { T: 'hunter2-secret' },
      redact: red,
      captureStdout: true,
      sink: (s, l) => lines.push(`${s}: ${l}`),
    });
    expect(lines.join('\n')).not.toContain('hunter2-secret');
    expect(lines[0]).toBe(`meta: $ env T=[REDACTED:TOKEN] bash -c $'echo "t=$T"; echo "t=$T" >&2' x`);
    expect(lines).toContain('stdout: t=[REDACTED:TOKEN]');
    expect(lines).toContain('stderr: t=[REDACTED:TOKEN]');
    expect(r.tail).toEqual(['t=[REDACTED:TOKEN]', 't=[REDACTED:TOKEN]']);
    expect(r.reproducer).toBe(`env T=[REDACTED:TOKEN] bash -c $'echo "t=$T"; echo "t=$T" >&2' x`);
    // Captured stdout is the program's data, handed to the caller as printed.
    expect(r.stdout).toBe('t=hunter2-secret\n');
  });

  it('reproducer() quotes only what needs it', () => {
    expect(reproducer(['make', 'O=/b/obj', 'KCFLAGS=-O2 -g'], { cwd: '/src', env: { A: '1', B: undefined } })).toBe("cd /src && env A=1 make O=/b/obj $'KCFLAGS=-O2 -g'");
  });
});
