/**
 * The real thing: `clawos-build lava run` exports the x86_64 jobs for a real
 * ClawOS ISO, runs each under Debian's lava-run (lava-dispatcher, no server)
 * and ingests the results: every boot variant must PASS with every check, as
 * the built-in boot lab says of the same ISO, and the verdicts must be in the
 * vault. It skips, saying why, only where lava-run, root, QEMU or an ISO is
 * missing; .ci/run runs it after the build, where none may be missing.
 * The ISO: $CLAWOS_LAVA_ISO, else the build's (build/build-engineer/x86_64/clawos-x86_64.iso).
 */
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { capture } from '../lib/proc.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp-dirs.js';

const tmp = useTmpDirs();
const ISO = process.env.CLAWOS_LAVA_ISO ?? join(repoRootDir(), 'build', 'build-engineer', 'x86_64', 'clawos-x86_64.iso');

async function missing(): Promise<string | null> {
  if (!(await capture(['sh', '-c', 'command -v lava-run']))) return 'lava-run is not installed (apt-get install lava-dispatcher; it is in specs/host-packages.txt)';
  if (process.getuid?.() !== 0) return 'lava-run must run as root';
  if (!(await capture(['sh', '-c', 'command -v qemu-system-x86_64']))) return 'qemu-system-x86_64 is not installed';
  if (!(await access(ISO, constants.R_OK).then(() => true, () => false))) return `no ISO at ${ISO} (build one, or set CLAWOS_LAVA_ISO)`;
  return null;
}

const why = await missing();

describe('lava run under the real lava-run', () => {
  test.skipIf(why !== null)(`x86_64: every boot variant PASSes with every check, and the verdicts are in the vault${why ? ` (skipped: ${why})` : ''}`, { timeout: 1_800_000 }, async () => {
    const build = await tmp();
    const r = await runCli(['lava', 'run', '--arch', 'x86_64', '--iso', ISO, '--allow-unverified', '--lab', 'ci-lava-run', '--build-dir', build]);
    const lines = r.stdout.trimEnd().split('\n');
    expect(r.exitCode, `${r.stdout}\n${r.stderr.join('\n')}`).toBe(0);
    // Every variant of qemu/x86_64.yaml that got a job (ovmf-secureboot only where the key dir has a Secure Boot key).
    const variants = lines.flatMap((l) => /^x86_64 ([a-z0-9-]+): /.exec(l)?.[1] ?? []);
    expect(variants).toEqual(expect.arrayContaining(['seabios', 'ovmf', 'usb-bios', 'usb-uefi']));
    for (const v of variants) {
      expect(lines.find((l) => l.startsWith(`x86_64 ${v}: `))).toMatch(new RegExp(`^x86_64 ${v}: PASS: CLAWOS-BOOT-OK, all \\d+ expected checks passed \\(LAVA job pass\\)$`));
    }
    expect(lines).toContain('flaky: none');
    const st = JSON.parse((await runCli(['status', '--json', '--build-dir', build])).stdout) as { lab_boots: { variant: string; labs: { lab: string; latest: { verdict: string } }[] }[] };
    expect(st.lab_boots.map((b) => `${b.variant} ${b.labs.map((l) => `${l.lab}=${l.latest.verdict}`).join(' ')}`).sort()).toEqual(variants.map((v) => `${v} ci-lava-run=PASS`).sort());
  });
});
