/**
 * The BR2_EXTERNAL tree cannot be built here (no Buildroot, no network), so its
 * well-formedness and its agreement with the busybox backend's data are checked
 * statically: symbols, package files, sourcing, fragments, overlay, kernel pin,
 * GRUB menus.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dir as tmpDir } from 'tmp-promise';
import { cp, readFile, rm, writeFile, appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../lib/repo-root.js';
import { loadArches } from '../pipeline/catalog/arch.js';
import { loadOfflineSpec } from '../pipeline/rootfs/buildroot-offline.js';
import { lintExternalTree } from '../pipeline/rootfs/lint-external-tree.js';
import { configMap, droppedSymbols, parseDefconfig } from '../pipeline/rootfs/defconfig.js';
import { DEFAULT_OVERLAY } from '../pipeline/steps/rootfs.js';
import { commandWords } from './helpers/shell-commands.js';

const real = repoRootDir();
const arches = [...(await loadArches(real)).values()];
const offline = await loadOfflineSpec(real);
const triplets = Object.fromEntries(Object.entries(offline.toolchain).map(([a, t]) => [a, t.triplet]));

describe('buildroot-external', () => {
  it('is a well-formed BR2_EXTERNAL tree that agrees with the arch data and the offline toolchain', async () => {
    expect(await lintExternalTree({ repoRoot: real, external: 'buildroot-external', arches, triplets })).toEqual([]);
  });

  it('has a Buildroot defconfig for every arch, using the overlay the busybox backend uses', async () => {
    expect(arches.map((a) => a.buildroot?.defconfig)).toEqual(['clawos_aarch64_defconfig', 'clawos_x86_64_defconfig']);
    for (const a of arches) {
      const cfg = configMap(await readFile(join(real, 'buildroot-external', 'configs', a.buildroot!.defconfig), 'utf8'));
      expect(cfg.get('BR2_ROOTFS_OVERLAY')).toBe(`"${DEFAULT_OVERLAY.replace('buildroot-external', '$(BR2_EXTERNAL_CLAWOS_PATH)')}"`);
    }
  });

  it('reports each kind of problem with its file and line', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const ext = join(d, 'buildroot-external');
      await cp(join(real, 'buildroot-external'), ext, { recursive: true });
      // A package without Config.in, one downloading without a .hash, one not sourced.
      await rm(join(ext, 'package', 'clawos-policies', 'Config.in'));
      await mkdir(join(ext, 'package', 'clawos-net'));
      await writeFile(
        join(ext, 'package', 'clawos-net', 'clawos-net.mk'),
        'CLAWOS_NET_VERSION = 1.0\nCLAWOS_NET_SITE = https://example.org/net\nNET_EXTRA = 1\n$(eval $(generic-package))\n',
      );
      await writeFile(join(ext, 'package', 'clawos-net', 'Config.in'), 'config BR2_PACKAGE_CLAWOS_NET\n\tbool "clawos-net"\n\nconfig BR2_CLAWOS_DEBUG\n\tbool "debug"\n');
      const dc = join(ext, 'configs', 'clawos_x86_64_defconfig');
      const n = (await readFile(dc, 'utf8')).split('\n').length;
      await appendFile(dc, 'BR2_PACKAGE_CLAWOS_MISSING=y\nBR2_REPRODUCIBLE=y\nFOO=y\nBR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS="smep"\nBR2_LINUX_KERNEL=y\n');
      const lineOf = async (f: string, sym: string) => (await readFile(join(ext, 'configs', f), 'utf8')).split('\n').findIndex((l) => l.startsWith(`${sym}=`)) + 1;
      const repro = await lineOf('clawos_x86_64_defconfig', 'BR2_REPRODUCIBLE');
      const flags = await lineOf('clawos_x86_64_defconfig', 'BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS');
      const polArm = await lineOf('clawos_aarch64_defconfig', 'BR2_PACKAGE_CLAWOS_POLICIES');
      const polX86 = await lineOf('clawos_x86_64_defconfig', 'BR2_PACKAGE_CLAWOS_POLICIES');
      const problems = await lintExternalTree({ repoRoot: d, external: 'buildroot-external', arches, triplets });
      const r = 'buildroot-external';
      expect(problems).toEqual([
        `${r}/Config.in:7: sources package/clawos-policies/Config.in, which does not exist`,
        `${r}/package/clawos-net/Config.in: not sourced from ${r}/Config.in`,
        `${r}/package/clawos-net/Config.in:4: BR2_CLAWOS_DEBUG must start with BR2_PACKAGE_CLAWOS_NET`,
        `${r}/package/clawos-net/clawos-net.mk:3: variable NET_EXTRA must start with CLAWOS_NET_`,
        `${r}/package/clawos-net: downloads from https://example.org/net but has no clawos-net.hash`,
        `${r}/package/clawos-policies/Config.in: missing`,
        `${r}/configs/clawos_x86_64_defconfig:${n + 1}: BR2_REPRODUCIBLE is already set on line ${repro}`,
        `${r}/configs/clawos_x86_64_defconfig:${n + 2}: not a defconfig line: FOO=y`,
        `${r}/configs/clawos_x86_64_defconfig:${n + 3}: BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS is already set on line ${flags}`,
        `${r}/configs/clawos_x86_64_defconfig: BR2_LINUX_KERNEL is y, want n (every ClawOS defconfig)`,
        `${r}/configs/clawos_x86_64_defconfig: BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS is "smep", want "smep smap" (specs/arch/x86_64.yaml guest.cpu_flags)`,
        `${r}/package/clawos-net/Config.in: BR2_CLAWOS_DEBUG: ClawOS symbols are BR2_PACKAGE_CLAWOS_*`,
        // clawos-policies lost its Config.in, so its symbol is now defined nowhere.
        `${r}/configs/clawos_aarch64_defconfig:${polArm}: BR2_PACKAGE_CLAWOS_POLICIES is defined by no package Config.in`,
        `${r}/configs/clawos_x86_64_defconfig:${polX86}: BR2_PACKAGE_CLAWOS_POLICIES is defined by no package Config.in`,
        `${r}/configs/clawos_x86_64_defconfig:${n}: BR2_PACKAGE_CLAWOS_MISSING is defined by no package Config.in`,
      ]);
    } finally {
      await cleanup();
    }
  });
});

// The real Buildroot tree the issue names (../shared/vendor/README.md): never copied into this repository.
const VENDOR_TARBALL = process.env['CLAWOS_BUILDROOT_VENDOR'] ?? join(real, '..', 'shared', 'vendor', 'buildroot-2026.08-rc1.tar.gz');
/** Applet options busybox builds only with a feature symbol: a script line matching the pattern needs it. */
const APPLET_OPTIONS: [RegExp, string][] = [
  [/nc -l/, 'NC_SERVER'],
  [/stat -c/, 'FEATURE_STAT_FORMAT'],
  [/ip (-o )?link/, 'FEATURE_IP_LINK'],
  [/ip addr/, 'FEATURE_IP_ADDRESS'],
  [/head -c/, 'FEATURE_FANCY_HEAD'],
  [/conv=/, 'FEATURE_DD_IBS_OBS'],
  [/grep -[A-Za-z]*[ABC]/, 'FEATURE_GREP_CONTEXT'],
];
const VENDOR_SHA256 = 'ffc14c9adaa13c1ba67c14de92b925b6b031a1a7a015d125c64e11ce5728d318';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out.sort();
}

describe.skipIf(!existsSync(VENDOR_TARBALL))('buildroot-external against real Buildroot 2026.08-rc1', () => {
  let br = '';
  let scratch = '';
  const external = join(real, 'buildroot-external');
  const make = (o: string, args: string[]) =>
    execFileSync('make', ['-s', '-C', br, `O=${o}`, `BR2_EXTERNAL=${external}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  beforeAll(() => {
    expect(createHash('sha256').update(readFileSync(VENDOR_TARBALL)).digest('hex')).toBe(VENDOR_SHA256);
  });
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'clawos-br-real-'));
    execFileSync('tar', ['-xzf', VENDOR_TARBALL, '-C', scratch]);
    br = join(scratch, 'buildroot-2026.08-rc1');
    return () => rm(scratch, { recursive: true, force: true });
  });

  it.each(arches.map((a) => [a.name, a.buildroot!.defconfig]))('loads the %s defconfig with no symbol dropped', async (arch, defconfig) => {
    const o = join(scratch, `o-${arch}`);
    make(o, [defconfig]);
    make(o, [`BR2_DEFCONFIG=${join(o, 'saved')}`, 'savedefconfig']);
    const requested = parseDefconfig(await readFile(join(external, 'configs', defconfig), 'utf8'));
    const dropped = droppedSymbols(requested, configMap(await readFile(join(o, 'saved'), 'utf8')), configMap(await readFile(join(o, '.config'), 'utf8')));
    expect(dropped).toEqual([]);
  }, 120_000);

  it("is clean under Buildroot's utils/check-package", async () => {
    const files = await filesUnder(external);
    const r = spawnSync('/usr/bin/python3', [join(br, 'utils', 'check-package'), '-b', ...files], { encoding: 'utf8' });
    expect(r.stderr + r.stdout).toMatch(/\n0 warnings generated\n/);
    expect(r.status).toBe(0);
  }, 120_000);

  // Buildroot's busybox is its own package/busybox/busybox.config with our fragment merged on top
  // (BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES); Debian's busybox-static, the busybox backend's,
  // has every applet. CI once booted a Buildroot image whose eBPF checks ran `nc -l` with no nc.
  it('enables in busybox every applet and applet option the overlay scripts run', async () => {
    const base = await readFile(join(br, 'package', 'busybox', 'busybox.config'), 'utf8');
    const fragment = await readFile(join(external, 'board', 'clawos', 'busybox.fragment'), 'utf8');
    const overlay = join(real, DEFAULT_OVERLAY);
    const scripts = (await filesUnder(overlay)).filter((f) => !f.endsWith('.patterns'));
    expect(scripts.map((f) => f.slice(overlay.length + 1))).toContain('usr/lib/clawos/checks.d/ebpf.sh');
    const missing = async (configs: string[]) => {
      const cfg = new Map<string, string>();
      for (const text of configs) {
        for (const l of text.split('\n')) {
          const m = /^CONFIG_(\w+)=(.*)$/.exec(l) ?? /^# CONFIG_(\w+) is not set$/.exec(l);
          if (m) cfg.set(m[1]!, m[2] ?? 'n');
        }
      }
      const out = new Set<string>();
      for (const f of scripts) {
        const text = await readFile(f, 'utf8');
        const where = (line: number) => `${f.slice(overlay.length + 1)}:${line}`;
        for (const { word, line } of commandWords(text)) {
          const sym = word.toUpperCase().replace(/-/g, '_');
          if (cfg.has(sym) && cfg.get(sym) !== 'y') out.add(`${word} (CONFIG_${sym}) at ${where(line)}`);
        }
        // Options that are features of their own in busybox.
        for (const [re, sym] of APPLET_OPTIONS) {
          const i = text.split('\n').findIndex((l) => re.test(l.replace(/(^|\s)#.*$/, '')));
          if (i >= 0 && cfg.get(sym) !== 'y') out.add(`${re.source} (CONFIG_${sym}) at ${where(i + 1)}`);
        }
      }
      return [...new Set([...out].map((m) => m.replace(/ at (\S+):\d+$/, ' in $1')))].sort();
    };
    // Buildroot's config alone lacks these (the check can fail), the merged one lacks none.
    expect(await missing([base])).toEqual([
      'nc (CONFIG_NC) in usr/lib/clawos/checks.d/ebpf.sh',
      'nc -l (CONFIG_NC_SERVER) in usr/lib/clawos/checks.d/ebpf.sh',
      'nsenter (CONFIG_NSENTER) in usr/lib/clawos/checks.d/ebpf.sh',
      'nsenter (CONFIG_NSENTER) in usr/lib/clawos/checks.sh',
      'stat (CONFIG_STAT) in usr/lib/clawos/checks.d/apparmor.sh',
      'stat (CONFIG_STAT) in usr/lib/clawos/checks.sh',
      'stat -c (CONFIG_FEATURE_STAT_FORMAT) in usr/lib/clawos/checks.d/apparmor.sh',
      'stat -c (CONFIG_FEATURE_STAT_FORMAT) in usr/lib/clawos/checks.sh',
      'unshare (CONFIG_UNSHARE) in usr/lib/clawos/checks.d/ebpf.sh',
      'unshare (CONFIG_UNSHARE) in usr/lib/clawos/checks.sh',
    ]);
    expect(await missing([base, fragment])).toEqual([]);
  });

  it("with Buildroot's kernel, installs the canary after kernel-module's modules_install, from extra/ where Kbuild puts it", async () => {
    const o = join(scratch, 'o-canary');
    const dc = join(scratch, 'canary_defconfig');
    await writeFile(dc, 'BR2_x86_64=y\nBR2_LINUX_KERNEL=y\nBR2_LINUX_KERNEL_CUSTOM_TARBALL=y\nBR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION="file:///usr/src/linux.tar.xz"\nBR2_PACKAGE_CLAWOS_CANARY=y\n');
    make(o, [`BR2_DEFCONFIG=${dc}`, 'defconfig']);
    const vars = make(o, ['printvars', 'VARS=CLAWOS_CANARY_POST_INSTALL_TARGET_HOOKS CLAWOS_CANARY_INSTALL_CANARIES']);
    const hooks = /^CLAWOS_CANARY_POST_INSTALL_TARGET_HOOKS=(.*)$/m.exec(vars)?.[1]?.split(/\s+/) ?? [];
    expect(hooks.indexOf('CLAWOS_CANARY_KERNEL_MODULES_INSTALL')).toBeGreaterThanOrEqual(0);
    expect(hooks.indexOf('CLAWOS_CANARY_INSTALL_CANARIES')).toBeGreaterThan(hooks.indexOf('CLAWOS_CANARY_KERNEL_MODULES_INSTALL'));
    // Buildroot leaves Kbuild's INSTALL_MOD_DIR default (extra) alone.
    expect(readFileSync(join(br, 'package', 'pkg-kernel-module.mk'), 'utf8')).not.toContain('INSTALL_MOD_DIR');
    expect(vars).toMatch(/\/extra\/clawos_canary\.ko \S+\/target\/lib\/modules\/clawos_canary\.ko/);
  }, 120_000);

  it("with A-01's kernel (the ClawOS defconfigs), installs A-01's signed and unsigned canaries and writes expect.env from its release and config", () => {
    const o = join(scratch, 'o-a01');
    make(o, [arches[0]!.buildroot!.defconfig]);
    const vars = make(o, ['CLAWOS_KERNEL_DIR=/k', 'printvars', 'VARS=CLAWOS_CANARY_INSTALL_TARGET_CMDS CLAWOS_INIT_DEPENDENCIES CLAWOS_INIT_KERNEL_CONFIG']);
    expect(vars).toContain('/k/modules/clawos_canary.ko');
    expect(vars).toContain('/k/modules/clawos_canary-unsigned.ko');
    expect(vars).toMatch(/^CLAWOS_INIT_KERNEL_CONFIG=\/k\/config$/m);
    expect(vars).not.toMatch(/^CLAWOS_INIT_DEPENDENCIES=.*linux/m);
  }, 120_000);
});
