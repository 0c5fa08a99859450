/**
 * `clawos-build hw` through the built binary: flash leaves an empty results area,
 * `hw record` of it exits 1 with the reason and records nothing; a serial capture
 * is recorded and signed by the tester key; a tester key the trust file does not
 * list does not count, and `hw list` says so.
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../../test/helpers/cli.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import { loadExpectedChecks } from '../../pipeline/boot/guest-boot.js';

const tmp = useTmpDirs();

describe('hw on the command line', () => {
  it('record, refuse, list: exit codes, JSON and the untrusted tester', async () => {
    const d = await tmp();
    const iso = join(d, 'clawos.iso');
    const bytes = randomBytes(300_000);
    await writeFile(iso, bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const b = join(d, 'build');
    const trusted = { ...process.env, CLAWOS_KEY_DIR: join(d, 'keys') };
    const stranger = { ...process.env, CLAWOS_KEY_DIR: join(d, 'other-keys') };
    expect((await runCli(['keys', 'init', '--role', 'tester', '--name', 'Ada Tester'], { env: trusted })).exitCode).toBe(0);
    expect((await runCli(['keys', 'init', '--role', 'tester', '--name', 'Mallory'], { env: stranger })).exitCode).toBe(0);

    const img = join(d, 'stick.img');
    expect((await runCli(['flash', iso, img, '--allow-file', '--yes', '--sha256', sha, '--build-dir', b])).exitCode).toBe(0);
    const empty = await runCli(['hw', 'record', img, '--build-dir', b, '--json'], { env: trusted });
    expect(empty.exitCode).toBe(1);
    expect(JSON.parse(empty.stdout)).toEqual({ ok: false, recorded: false, reason: 'no-results', message: `${img}: the results area is empty: no ClawOS boot wrote to it (boot the machine from this stick first)` });
    expect(await readdir(join(b, 'vault', 'hw')).catch(() => [])).toEqual([]);

    const checks = await loadExpectedChecks(join(process.cwd(), 'buildroot-external/board/clawos/checks.yaml'), 'x86_64', { cpu_flags: ['smep'] });
    const log = join(d, 'console.log');
    await writeFile(log, ['CLAWOS-INIT arch=x86_64 mem_used_kb=1 mem_total_kb=2', 'CLAWOS-MACHINE vendor=ClawOS Test Lab', ...checks.map((c) => `CLAWOS-CHECK name=${c} result=pass value=ok`), `CLAWOS-BOOT-OK passed=${checks.length}`].join('\n') + '\n');
    const ok = await runCli(['hw', 'record', log, '--iso', iso, '--build-dir', b], { env: trusted });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^hw record [0-9a-f]{16}: x86_64 ISO sha256 ${sha} on ClawOS Test Lab unknown \\(firmware unknown, unknown, Secure Boot unknown\\)\\n  PASS: CLAWOS-BOOT-OK, all ${checks.length} expected checks passed\\n`));
    expect((await runCli(['hw', 'record', log, '--iso', iso, '--build-dir', b], { env: stranger })).exitCode).toBe(0);

    const list = await runCli(['hw', 'list', '--iso', iso, '--build-dir', b, '--json'], { env: trusted });
    expect(list.exitCode).toBe(0);
    const doc = JSON.parse(list.stdout) as { g07: { status: string }; machines: { tester: string; not_counted: string | null }[] };
    expect(doc.g07.status).toBe('PASS');
    const byTester = Object.fromEntries(doc.machines.map((m) => [m.tester, m.not_counted]));
    expect(byTester['Ada Tester']).toBeNull();
    expect(byTester['Mallory']).toMatch(/^UNKNOWN_KEY: [0-9a-f]{64}\.dsse\.json: no signature by a trusted tester key \(key [0-9a-f]{64} is not in the trust root\)$/);
  }, 120_000);
});
