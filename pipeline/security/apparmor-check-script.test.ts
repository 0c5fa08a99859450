/**
 * The guest's checks.d/apparmor.sh, run on the build host under busybox sh
 * against a fake securityfs directory (AA_FS), policy dir (AA_POLICY) and
 * command line (AA_CMDLINE): each way the check can fail, and what it then says.
 * The passing path (loading into a real kernel, the probe under the profile) is
 * proven by the guest boots, recorded in test/fixtures/serial-logs/.
 */
import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { DEFAULT_OVERLAY } from '../steps/rootfs.js';

const REPO = repoRootDir();
const CHECKS = join(REPO, DEFAULT_OVERLAY, 'usr/lib/clawos/checks.sh');
const SCRIPT = join(REPO, DEFAULT_OVERLAY, 'usr/lib/clawos/checks.d/apparmor.sh');
const FEATURES = await readFile(join(REPO, 'specs/apparmor/kernel-features.txt'), 'utf8');

/** Run `script` after sourcing checks.sh and apparmor.sh (run_check stubbed out). */
async function sh(script: string, env: Record<string, string>) {
  const r = await run(['busybox', 'sh', '-c', `. ${CHECKS}; run_check() { :; }; . ${SCRIPT}; ${script}`], { captureStdout: true, env });
  return r.stdout.trimEnd();
}

/** The features file format back into a directory tree (as securityfs shows it). */
async function writeFeatureTree(root: string, text: string): Promise<void> {
  let pos = 0;
  const entries = async (dir: string): Promise<void> => {
    await mkdir(dir, { recursive: true });
    while (pos < text.length && text[pos] !== '}') {
      const open = text.indexOf(' {', pos);
      const name = text.slice(pos, open);
      pos = open + 2;
      const close = text.indexOf('}', pos);
      const brace = text.indexOf('{', pos);
      if (brace >= 0 && brace < close) {
        await entries(join(dir, name));
      } else {
        await writeFile(join(dir, name), text.slice(pos, close));
        pos = close;
      }
      pos += 2; // "}\n"
    }
  };
  await entries(root);
}

async function fixture(d: string, o: { features?: string; profiles?: string; list?: string; probe?: string; cmdline?: string } = {}) {
  const fs = join(d, 'aafs');
  const policy = join(d, 'policy');
  await writeFeatureTree(join(fs, 'features'), o.features ?? FEATURES);
  await writeFile(join(fs, '.load'), '');
  await writeFile(join(fs, 'profiles'), o.profiles ?? '');
  await mkdir(policy, { recursive: true });
  await writeFile(join(policy, 'features'), FEATURES);
  if (o.list !== undefined) await writeFile(join(policy, 'profiles.list'), o.list);
  for (const n of ['clawos-agent', 'clawos-wasm']) for (const m of ['complain', 'enforce']) await writeFile(join(policy, `${n}.${m}.bin`), `${n} ${m}`);
  if (o.probe !== undefined) await writeFile(join(policy, 'probe.env'), o.probe);
  await writeFile(join(d, 'cmdline'), o.cmdline ?? 'console=ttyS0 panic=-1\n');
  return { AA_FS: fs, AA_POLICY: policy, AA_CMDLINE: join(d, 'cmdline') };
}

const LIST = '# header\nclawos-agent complain spec\nclawos-wasm complain spec\n';

describe('guest checks.d/apparmor.sh', () => {
  it('aa_features writes the features tree in the --features-file format the policy was compiled with', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d);
      expect((await sh('aa_features "$AA_FS/features"', env)) + '\n').toBe(FEATURES);
    } finally {
      await cleanup();
    }
  });

  it('fails on a clawos.apparmor= value that is not a mode', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d, { list: LIST, cmdline: 'console=ttyS0 clawos.apparmor=permissive quiet\n' });
      expect(await sh('check_apparmor; echo "$? $VALUE"', env)).toBe('1 clawos.apparmor=permissive on the kernel command line: want complain or enforce');
    } finally {
      await cleanup();
    }
  });

  it('fails when the image has no compiled policy, or the kernel no AppArmor filesystem', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d);
      expect(await sh('check_apparmor; echo "$? $VALUE"', env)).toBe(
        `1 no ${env.AA_POLICY}/profiles.list: the image has no compiled AppArmor policy (task F-06)`,
      );
      await writeFile(join(env.AA_POLICY, 'profiles.list'), LIST);
      expect(await sh('check_apparmor; echo "$? $VALUE"', { ...env, AA_FS: join(d, 'nowhere') })).toBe(
        `1 ${join(d, 'nowhere')}/.load missing: AppArmor is not enabled or securityfs is not mounted`,
      );
    } finally {
      await cleanup();
    }
  });

  it("fails when the kernel's features differ from the compiled-for ones, and prints the kernel's for the data file", async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d, { list: LIST, features: 'caps {mask {chown bpf\n}\n}\n' });
      expect((await sh('check_apparmor; echo "$? $VALUE"', env)).split('\n')).toEqual([
        'AAFEATURES|caps {mask {chown bpf',
        'AAFEATURES|}',
        'AAFEATURES|}',
        `1 the kernel's AppArmor features differ from ${env.AA_POLICY}/features, which the policy was compiled for (the kernel's are on the console as AAFEATURES| lines)`,
      ]);
    } finally {
      await cleanup();
    }
  });

  it('loads each profile in the spec mode and fails naming those the kernel does not list in that mode', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d, { list: LIST, profiles: 'clawos-agent (complain)\nclawos-wasm (enforce)\n' });
      expect(await sh('check_apparmor; echo "$? $VALUE"', env)).toBe(
        '1 mode=spec profiles=clawos-agent:complain; no selftest probe (probe.env names no loaded profile); ' +
          'FAILED: not-listed:clawos-wasm:complain (kernel lists: clawos-agent:complain clawos-wasm:enforce)',
      );
      // The last profile written to .load is the last one of the list, in its mode's binary.
      expect(await readFile(join(env.AA_FS, '.load'), 'utf8')).toBe('clawos-wasm complain');
    } finally {
      await cleanup();
    }
  });

  it('takes the mode from the command line over the spec, and needs a probe profile to pass', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const env = await fixture(d, {
        list: LIST,
        profiles: 'clawos-wasm (enforce)\nclawos-agent (enforce)\n',
        cmdline: 'console=ttyS0 clawos.apparmor=enforce\n',
        probe: "AA_PROBE_PROFILE='clawos-selftest'\nAA_PROBE_READ='/nonexistent/x'\n",
      });
      expect(await sh('check_apparmor; echo "$? $VALUE"', env)).toBe(
        '1 mode=enforce profiles=clawos-agent:enforce,clawos-wasm:enforce; no selftest probe (probe.env names no loaded profile)',
      );
      expect(await readFile(join(env.AA_FS, '.load'), 'utf8')).toBe('clawos-wasm enforce');
      // A missing binary, or one the kernel refuses, is a load failure naming the profile.
      const r = await sh(`rm "$AA_POLICY/clawos-agent.enforce.bin"; check_apparmor; echo "$? $VALUE"`, env);
      expect(r).toBe(
        `1 mode=enforce profiles=clawos-agent:enforce,clawos-wasm:enforce; no selftest probe (probe.env names no loaded profile); ` +
          `FAILED: load-clawos-agent(missing or empty: ${env.AA_POLICY}/clawos-agent.enforce.bin)`,
      );
      // (a directory stands in for a .load the write fails on, even as root)
      const r2 = await sh(`echo x >"$AA_POLICY/clawos-agent.enforce.bin"; rm "$AA_FS/.load"; mkdir "$AA_FS/.load"; check_apparmor; echo "$? $VALUE"`, env);
      expect(r2).toBe(
        `1 mode=enforce profiles=clawos-agent:enforce,clawos-wasm:enforce; no selftest probe (probe.env names no loaded profile); ` +
          `FAILED: load-clawos-agent(dd: can't open '${env.AA_FS}/.load': Is a directory) load-clawos-wasm(dd: can't open '${env.AA_FS}/.load': Is a directory)`,
      );
    } finally {
      await cleanup();
    }
  });
});

describe('aa_audit: the kernel audit record of a denied open', () => {
  // Recorded from the guests: Linux 6.1 (test/fixtures/serial-logs) and 6.12, which adds class="file".
  const LINUX_6_1 = 'audit: type=1400 audit(1.2:3): apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary" pid=180 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0';
  const LINUX_6_12 = 'audit: type=1400 audit(1.2:3): apparmor="DENIED" operation="open" class="file" profile="clawos-selftest" name="/etc/clawos/secret-canary" pid=180 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0';
  // dmesg as a shell function (busybox sh would run its own applet before a PATH entry):
  // the recorded line and an unrelated one for another file.
  const audit = (line: string) =>
    sh(`dmesg() { printf '%s\\n' '${line.replace(/secret-canary/, 'other')}' '${line}'; }; aa_audit DENIED clawos-selftest /etc/clawos/secret-canary; echo "$AA_AUDIT"`, {});

  it('finds the record in both kernels\' formats, and names it up to pid=', async () => {
    expect(await audit(LINUX_6_1)).toBe('apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"');
    expect(await audit(LINUX_6_12)).toBe('apparmor="DENIED" operation="open" class="file" profile="clawos-selftest" name="/etc/clawos/secret-canary"');
  });
});
