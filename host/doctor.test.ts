import { loadLock, renderLock } from '../pipeline/catalog/input-lock.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../lib/errors.js';
import { resetAccelMemo } from '../qemu/kvm-probe.js';
import { applyFixes, compareVersions, formatDoctorReport, loadDoctorData, runDoctor, which, type DoctorOptions } from './doctor.js';
import { lockFor, makeDeb } from '../test/helpers/debs-fixtures.js';
import { doctorCommand } from '../bin/commands/doctor.js';
import { PassThrough } from 'node:stream';

const REPO = join(import.meta.dirname, '..');
const FAKE_QEMU = join(REPO, 'test', 'fakes', 'fake-qemu');
const PASS_LOG = join(REPO, 'test', 'fixtures', 'serial-logs', 'x86_64-iso-seabios-pass.log');

/**
 * What the tools printed on a Debian 12 build host (recorded with each tool's
 * version flag); the fakes replay it.
 */
const RECORDED: Record<string, string> = {
  pahole: 'v1.24',
  'grub-mkimage': 'grub-mkimage (GRUB) 2.06-13+deb12u2',
  objcopy: 'GNU objcopy (GNU Binutils for Debian) 2.40\nCopyright (C) 2023 Free Software Foundation, Inc.',
  'aarch64-linux-gnu-objcopy': 'GNU objcopy (GNU Binutils for Debian) 2.40\nCopyright (C) 2023 Free Software Foundation, Inc.',
  sbsign: 'sbsign 0.9.4',
  sbverify: 'sbverify 0.9.4',
  faketime: '\nfaketime: Version 0.9.10\nFor usage information please use \'faketime --help\'.',
  xorriso: 'xorriso 1.5.4 : RockRidge filesystem manipulator, libburnia project.\n\nxorriso 1.5.4',
  mformat: 'mformat (GNU mtools) 4.0.32',
  apparmor_parser: 'AppArmor parser version 3.0.8\nCopyright (C) 1999-2008 Novell Inc.\nCopyright 2009-2018 Canonical Ltd.',
  bwrap: 'bubblewrap 0.8.0',
  strace: 'strace -- version 6.1\nCopyright (c) 1991-2022 The strace developers <https://strace.io>.',
  'qemu-system-aarch64': 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers',
};
const PLAIN = ['make', 'bc', 'bison', 'flex', 'xz', 'cpio', 'zstd', 'gcc', 'aarch64-linux-gnu-gcc'];
const FIRMWARE = [
  '/usr/share/OVMF/OVMF_CODE_4M.fd',
  '/usr/share/OVMF/OVMF_VARS_4M.fd',
  '/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd',
  '/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd',
  '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
  '/usr/share/AAVMF/AAVMF_CODE.snakeoil.fd',
  '/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd',
];
const HOST_FILES = ['/usr/include/libelf.h', '/usr/include/openssl/opensslv.h', '/usr/src/linux-source-6.12.tar.xz'];
/** Real programs the fakes and pipeline/inputs/debs.ts need besides the fakes. */
const BASICS = ['bash', 'sh', 'sleep', 'basename', 'cat', 'cp', 'mkdir', 'touch', 'grep', 'chmod', 'dpkg-deb', 'tar'];

interface FakeHost {
  t: DirectoryResult;
  repo: string;
  fsRoot: string;
  bin: string;
  state: string;
  buildDir: string;
  env: Record<string, string>;
  opts(extra?: Partial<DoctorOptions>): DoctorOptions;
}

async function script(path: string, body: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
}

const printer = (out: string) => `cat <<'EOF'\n${out}\nEOF`;

/**
 * A build host in a temp dir: a repo copy (specs/, qemu/, kernel-config/), a
 * fake / with firmware, headers and GRUB dirs, and a PATH of fakes: tools that
 * print their recorded versions, QEMU (test/fakes/fake-qemu), dpkg and apt-get
 * keeping their state in files.
 */
/** Re-lock the repo copy so that these fake mirror .debs (state/debs/NAME:ARCH.deb) are the locked ones. */
async function lockTheseDebs(h: FakeHost, keys: string[]): Promise<void> {
  const lf = join(h.repo, 'inputs.lock.yaml');
  const cur = (await loadLock(h.repo)).lock;
  const mine = (await lockFor(Object.fromEntries(keys.map((k) => [k, join(h.state, 'debs', `${k}.deb`)])))).lock.debs;
  const rest = cur.debs.filter((d) => !mine.some((m) => m.name === d.name && m.arch === d.arch));
  await writeFile(lf, renderLock({ ...cur, debs: [...rest, ...mine] }));
}

async function fakeHost(): Promise<FakeHost> {
  const t = await dir({ unsafeCleanup: true });
  const repo = join(t.path, 'repo');
  for (const d of ['specs', 'qemu', 'kernel-config']) await cp(join(REPO, d), join(repo, d), { recursive: true });
  await cp(join(REPO, 'package.json'), join(repo, 'package.json'));
  await cp(join(REPO, 'inputs.lock.yaml'), join(repo, 'inputs.lock.yaml'));
  // Free space depends on the machine running the tests; the threshold test sets its own.
  const dy = join(repo, 'specs', 'doctor.yaml');
  await writeFile(dy, (await readFile(dy, 'utf8')).replace('min_free_gib: 8', 'min_free_gib: 0'));
  const fsRoot = join(t.path, 'root');
  for (const f of [...FIRMWARE, ...HOST_FILES]) {
    await mkdir(dirname(join(fsRoot, f)), { recursive: true });
    await writeFile(join(fsRoot, f), 'x');
  }
  const bin = join(t.path, 'bin');
  const basics = join(t.path, 'basics');
  await mkdir(basics, { recursive: true });
  for (const b of BASICS) await symlink(existsSync(`/usr/bin/${b}`) ? `/usr/bin/${b}` : `/bin/${b}`, join(basics, b));
  for (const [cmd, out] of Object.entries(RECORDED)) await script(join(bin, cmd), printer(out));
  for (const cmd of PLAIN) await script(join(bin, cmd), 'exit 0');
  await symlink(FAKE_QEMU, join(bin, 'qemu-system-x86_64'));
  const state = join(t.path, 'state');
  await mkdir(join(state, 'provides'), { recursive: true });
  await mkdir(join(state, 'debs'), { recursive: true });
  await writeFile(join(state, 'foreign'), '');
  await writeFile(join(state, 'calls'), '');
  // dpkg: the native arch is amd64; foreign arches live in a file.
  await script(
    join(bin, 'dpkg'),
    `echo "dpkg $*" >>"$FAKE_STATE/calls"
case "$1" in
  --print-architecture) echo amd64 ;;
  --print-foreign-architectures) cat "$FAKE_STATE/foreign" ;;
  --add-architecture) echo "$2" >>"$FAKE_STATE/foreign" ;;
  *) exit 2 ;;
esac`,
  );
  // apt-get: knows a package:arch when its arch is native or added; "installs" by running provides/<pkg>.
  await script(
    join(bin, 'apt-get'),
    `echo "apt-get $*" >>"$FAKE_STATE/calls"
known() { a=\${1#*:}; [ "$a" = amd64 ] || grep -qx "$a" "$FAKE_STATE/foreign"; }
case "$1" in
  update) touch "$FAKE_STATE/updated" ;;
  install) shift; for p in "$@"; do case "$p" in -*) ;; *) [ -x "$FAKE_STATE/provides/$p" ] && "$FAKE_STATE/provides/$p" ;; esac; done ;;
  download)
    if [ "$2" = --print-uris ]; then
      if known "$3"; then p=\${3%:*}; a=\${3#*:}; echo "'http://deb.debian.org/debian/pool/main/x/\${p}/\${p}_1.0_\${a}.deb' \${p}_1.0_\${a}.deb 1000 SHA256:00"; exit 0; fi
      echo "E: Unable to locate package $3" >&2; exit 100
    fi
    s=\${2%%=*}
    if known "$s" && [ -f "$FAKE_STATE/debs/$s.deb" ]; then cp "$FAKE_STATE/debs/$s.deb" .; exit 0; fi
    echo "E: Unable to locate package $s" >&2; exit 100 ;;
esac
exit 0`,
  );
  const buildDir = join(t.path, 'build');
  await mkdir(buildDir, { recursive: true });
  const env = { PATH: `${bin}:${basics}`, FAKE_STATE: state, FAKE_QEMU_DELAY_MS: '1', CLAWOS_DOWNLOAD_CACHE: join(t.path, 'downloads') };
  return {
    t,
    repo,
    fsRoot,
    bin,
    state,
    buildDir,
    env,
    opts: (extra = {}) => ({ repoRoot: repo, buildDir, env, fsRoot, hostArch: 'x86_64', probeTimeoutS: 1, ...extra }),
  };
}

/** Put a target-arch package into the build cache as pipeline/inputs/debs.ts leaves it. */
async function cacheDeb(h: FakeHost, debArch: string, pkg: string, files: string[] = []): Promise<void> {
  const root = join(h.buildDir, 'cache', 'debs', debArch, pkg, 'root');
  await mkdir(root, { recursive: true });
  for (const f of files) await mkdir(join(root, f), { recursive: true });
  await writeFile(join(dirname(root), 'deb.json'), JSON.stringify({ package: pkg, version: '1.0', arch: debArch, sha256: '0'.repeat(64), root }));
}

async function allCached(h: FakeHost): Promise<void> {
  await writeFile(join(h.state, 'foreign'), 'arm64\n');
  await cacheDeb(h, 'arm64', 'busybox-static');
  await cacheDeb(h, 'arm64', 'systemd-boot-efi', ['usr/lib/systemd/boot/efi/linuxaa64.efi.stub']);
  await cacheDeb(h, 'amd64', 'busybox-static');
  await cacheDeb(h, 'amd64', 'systemd-boot-efi', ['usr/lib/systemd/boot/efi/linuxx64.efi.stub']);
  await cacheDeb(h, 'amd64', 'grub-pc-bin', ['usr/lib/grub/i386-pc']);
}

let h: FakeHost;
beforeEach(async () => {
  h = await fakeHost();
  resetAccelMemo();
});
afterEach(async () => {
  await h.t.cleanup();
});

describe('doctor on a fake host', () => {
  it('everything present: exit 0, KVM not probed while there is no ISO', async () => {
    await allCached(h);
    const r = await runDoctor(h.opts());
    expect(r.checks.filter((c) => c.status !== 'ok').map((c) => [c.label, c.status, c.detail])).toEqual([
      ['kvm aarch64', 'skipped', 'not applicable: KVM runs aarch64 guests only on aarch64 hosts; this host is x86_64, so they use TCG'],
      ['kvm x86_64', 'skipped', `not probed: nothing to boot yet (${h.buildDir}/build-engineer/x86_64/clawos-x86_64.iso does not exist); run doctor again after a build`],
    ]);
    expect(r.ok).toBe(true);
    expect(r.fix_commands).toEqual([]);
    expect(r.checks.find((c) => c.id === 'tool:pahole')!.detail).toBe(`1.24 (at least 1.16) at ${h.bin}/pahole`);
    expect(r.checks.find((c) => c.id === 'qemu:x86_64')!.detail).toBe(`7.2.99 (at least 7.2) at ${h.bin}/qemu-system-x86_64`);
    expect(r.checks.find((c) => c.id === 'grub:aarch64:{deb:systemd-boot-efi}/usr/lib/systemd/boot/efi/linuxaa64.efi.stub')!.detail).toBe(
      `${h.buildDir}/cache/debs/arm64/systemd-boot-efi/root/usr/lib/systemd/boot/efi/linuxaa64.efi.stub`,
    );
    expect(r.checks.find((c) => c.id === 'tool:faketime')!.detail).toBe(`0.9.10 at ${h.bin}/faketime`);
  });

  it('missing pieces: each with its exact fix, the fix plan in order, exit 4', async () => {
    await rm(join(h.bin, 'strace'));
    await script(join(h.bin, 'pahole'), printer('v1.15'));
    await rm(join(h.fsRoot, '/usr/share/OVMF/OVMF_CODE_4M.fd'));
    await rm(join(h.bin, 'sbsign'));
    await writeFile(join(h.repo, 'specs', 'doctor.yaml'), (await readFile(join(h.repo, 'specs', 'doctor.yaml'), 'utf8')).replace('min_free_gib: 0', 'min_free_gib: 1000000'));
    const r = await runDoctor(h.opts({ noKvmProbe: true }));
    expect(r.ok).toBe(false);
    const text = formatDoctorReport(r);
    const free = r.checks.find((c) => c.id === 'disk')!.detail;
    expect(text).toBe(
      [
        'clawos-build doctor: 45 checks on x86_64 (Debian amd64): 34 ok, 9 missing, 0 warnings, 2 skipped',
        `  ok       make                               ${h.bin}/make`,
        `  ok       bc                                 ${h.bin}/bc`,
        `  ok       bison                              ${h.bin}/bison`,
        `  ok       flex                               ${h.bin}/flex`,
        `  MISSING  pahole                             1.15 at ${h.bin}/pahole is older than 1.16`,
        "                                              needed: CONFIG_DEBUG_INFO_BTF; the kernel's link step refuses pahole older than v1.16",
        '                                              fix: apt-get install -y --no-install-recommends dwarves (from a Debian release that has 1.16 or later)',
        `  ok       xz                                 ${h.bin}/xz`,
        `  ok       cpio                               ${h.bin}/cpio`,
        `  ok       zstd                               ${h.bin}/zstd`,
        `  ok       grub-mkimage                       2.06 at ${h.bin}/grub-mkimage`,
        `  ok       xorriso                            1.5.4 at ${h.bin}/xorriso`,
        `  ok       mformat                            4.0.32 at ${h.bin}/mformat`,
        `  ok       objcopy                            2.40 at ${h.bin}/objcopy`,
        `  ok       aarch64-linux-gnu-objcopy          2.40 at ${h.bin}/aarch64-linux-gnu-objcopy`,
        '  MISSING  sbsign                             sbsign not found in PATH',
        "                                              needed: signs the UKI with the key dir's Secure Boot key",
        '                                              fix: apt-get install -y --no-install-recommends sbsigntool',
        `  ok       sbverify                           0.9.4 at ${h.bin}/sbverify`,
        `  ok       faketime                           0.9.10 at ${h.bin}/faketime`,
        `  ok       apparmor_parser                    3.0.8 at ${h.bin}/apparmor_parser`,
        `  ok       bwrap                              0.8.0 at ${h.bin}/bwrap`,
        '  MISSING  strace                             strace not found in PATH',
        '                                              needed: traces the syscalls a process really makes (C-02 whitelist pruning, sandbox checks)',
        '                                              fix: apt-get install -y --no-install-recommends strace',
        `  ok       qemu-system-aarch64                7.2.22 (at least 7.2) at ${h.bin}/qemu-system-aarch64`,
        `  ok       qemu-system-x86_64                 7.2.99 (at least 7.2) at ${h.bin}/qemu-system-x86_64`,
        '  ok       firmware QEMU_EFI.fd               /usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
        '  ok       firmware AAVMF_CODE.snakeoil.fd    /usr/share/AAVMF/AAVMF_CODE.snakeoil.fd',
        '  ok       firmware AAVMF_VARS.snakeoil.fd    /usr/share/AAVMF/AAVMF_VARS.snakeoil.fd',
        '  MISSING  firmware OVMF_CODE_4M.fd           /usr/share/OVMF/OVMF_CODE_4M.fd is missing',
        '                                              needed: x86_64 ovmf boots with it',
        '                                              fix: apt-get install -y --no-install-recommends ovmf',
        '  ok       firmware OVMF_VARS_4M.fd           /usr/share/OVMF/OVMF_VARS_4M.fd',
        '  ok       firmware OVMF_CODE_4M.snakeoil.fd  /usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd',
        '  ok       firmware OVMF_VARS_4M.snakeoil.fd  /usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd',
        `  ok       aarch64-linux-gnu-gcc              ${h.bin}/aarch64-linux-gnu-gcc`,
        `  ok       gcc                                ${h.bin}/gcc`,
        '  ok       kernel source                      linux-source-6.12 from inputs.lock.yaml, fetched by the build (host copy not the locked one)',
        '  ok       libelf.h                           /usr/include/libelf.h',
        '  ok       opensslv.h                         /usr/include/openssl/opensslv.h',
        '  MISSING  iso linuxaa64.efi.stub             from systemd-boot-efi:arm64, not fetched yet (apt cannot fetch it: see below)',
        '                                              needed: linuxaa64.efi.stub (UKI stub or GRUB i386-pc modules) for the aarch64 ISO',
        '                                              fix: dpkg --add-architecture arm64 && apt-get update',
        '  ok       iso linuxx64.efi.stub              from systemd-boot-efi:amd64, not fetched yet (apt can fetch it)',
        '  ok       iso i386-pc                        from grub-pc-bin:amd64, not fetched yet (apt can fetch it)',
        '  MISSING  dpkg arch arm64                    dpkg does not have the arm64 architecture',
        '                                              needed: apt fetches the arm64 packages',
        '                                              fix: dpkg --add-architecture arm64 && apt-get update',
        '  MISSING  deb busybox-static:arm64           dpkg does not have the arm64 architecture, so apt cannot fetch busybox-static:arm64',
        '                                              needed: fetched for aarch64 with apt-get download (build cache)',
        '                                              fix: dpkg --add-architecture arm64 && apt-get update',
        '  MISSING  deb systemd-boot-efi:arm64         dpkg does not have the arm64 architecture, so apt cannot fetch systemd-boot-efi:arm64',
        '                                              needed: fetched for aarch64 with apt-get download (build cache)',
        '                                              fix: dpkg --add-architecture arm64 && apt-get update',
        '  ok       deb busybox-static:amd64           not fetched yet; apt can fetch busybox-static_1.0_amd64.deb (the build downloads it)',
        '  ok       deb systemd-boot-efi:amd64         not fetched yet; apt can fetch systemd-boot-efi_1.0_amd64.deb (the build downloads it)',
        '  ok       deb grub-pc-bin:amd64              not fetched yet; apt can fetch grub-pc-bin_1.0_amd64.deb (the build downloads it)',
        `  MISSING  free disk                          ${free}`,
        '                                              needed: the build dir holds two kernel object trees, the unpacked source, the ISOs and the cache',
        `                                              fix: free space on the filesystem of ${h.buildDir}, or pass --build-dir on a filesystem with 1000000 GiB free`,
        '  skipped  kvm aarch64                        not applicable: KVM runs aarch64 guests only on aarch64 hosts; this host is x86_64, so they use TCG',
        '  skipped  kvm x86_64                         not probed (turned off by the caller)',
        'to fix the packages, as root:',
        '  dpkg --add-architecture arm64',
        '  apt-get update',
        '  apt-get install -y --no-install-recommends dwarves ovmf sbsigntool strace',
        'or run: clawos-build doctor --fix',
        'the build cannot run on this host yet (exit 4)',
        '',
      ].join('\n'),
    );
    expect(free).toMatch(new RegExp(`^\\d+\\.\\d GiB free at ${h.buildDir} \\(needs 1000000 GiB\\)$`));
  });

  it('--fix as a normal user says to re-run as root and runs nothing', async () => {
    await rm(join(h.bin, 'strace'));
    const r = await runDoctor(h.opts({ noKvmProbe: true }));
    const f = await applyFixes(r, { ...h.opts(), isRoot: false });
    expect(f).toEqual({
      refused:
        '--fix runs dpkg --add-architecture arm64 && apt-get update && apt-get install -y --no-install-recommends strace: re-run as root (sudo clawos-build doctor --fix)',
      ran: [],
    });
    expect(readFileSync(join(h.state, 'calls'), 'utf8')).not.toMatch(/apt-get (update|install)|--add-architecture/);
  });

  it('--fix as root installs the packages, adds arm64, fetches the arm64 pieces into the build cache; then all is well', async () => {
    await rm(join(h.bin, 'strace'));
    await rm(join(h.fsRoot, '/usr/share/OVMF/OVMF_CODE_4M.fd'));
    await script(join(h.state, 'provides', 'strace'), `printf '#!/bin/sh\\necho "strace -- version 6.1"\\n' >"${h.bin}/strace"; chmod +x "${h.bin}/strace"`);
    await script(join(h.state, 'provides', 'ovmf'), `touch "${h.fsRoot}/usr/share/OVMF/OVMF_CODE_4M.fd"`);
    const debs = join(h.t.path, 'debs');
    await mkdir(debs, { recursive: true });
    await copyFile(await makeDeb(debs, 'busybox-static', '1:1.35.0-4+b3', { 'bin/busybox': 'fake busybox' }), join(h.state, 'debs', 'busybox-static:arm64.deb'));
    await copyFile(await makeDeb(debs, 'busybox-static', '1:1.35.0-4+b4', { 'bin/busybox': 'fake busybox' }), join(h.state, 'debs', 'busybox-static:amd64.deb'));
    await copyFile(await makeDeb(debs, 'systemd-boot-efi', '252.39-1~deb12u1', { 'usr/lib/systemd/boot/efi/linuxaa64.efi.stub': 'fake arm64 stub' }), join(h.state, 'debs', 'systemd-boot-efi:arm64.deb'));
    await copyFile(await makeDeb(debs, 'systemd-boot-efi', '252.39-1~deb12u1', { 'usr/lib/systemd/boot/efi/linuxx64.efi.stub': 'fake amd64 stub' }), join(h.state, 'debs', 'systemd-boot-efi:amd64.deb'));
    await copyFile(await makeDeb(debs, 'grub-pc-bin', '2.06-13', { 'usr/lib/grub/i386-pc/boot.img': 'fake' }), join(h.state, 'debs', 'grub-pc-bin:amd64.deb'));
    await lockTheseDebs(h, ['busybox-static:arm64', 'busybox-static:amd64', 'systemd-boot-efi:arm64', 'systemd-boot-efi:amd64', 'grub-pc-bin:amd64']);

    const before = await runDoctor(h.opts({ noKvmProbe: true }));
    expect(before.ok).toBe(false);
    const log: string[] = [];
    const f = await applyFixes(before, { ...h.opts(), isRoot: true, log: (l) => log.push(l) });
    expect(f.refused).toBeUndefined();
    expect(f.ran.map((x) => [x.command, x.ok])).toEqual([
      ['dpkg --add-architecture arm64', true],
      ['apt-get update', true],
      ['apt-get install -y --no-install-recommends ovmf strace', true],
      [`apt-get download busybox-static:arm64 into ${h.buildDir}/cache`, true],
      [`apt-get download systemd-boot-efi:arm64 into ${h.buildDir}/cache`, true],
      [`apt-get download busybox-static:amd64 into ${h.buildDir}/cache`, true],
      [`apt-get download systemd-boot-efi:amd64 into ${h.buildDir}/cache`, true],
      [`apt-get download grub-pc-bin:amd64 into ${h.buildDir}/cache`, true],
    ]);
    expect(f.ran[3]!.detail).toMatch(/^1:1\.35\.0-4\+b3, sha256 [0-9a-f]{64}$/);
    // Each command's pasteable reproducer line is logged before it runs.
    const repro = log.filter((l) => l.startsWith('$ ')).map((l) => l.replace(/^\$ env (\S+=\S+ )+/, '$ '));
    expect(repro).toEqual(['$ dpkg --add-architecture arm64', '$ apt-get update', '$ apt-get install -y --no-install-recommends ovmf strace']);
    expect(log).toContain(`debs: busybox-static:arm64 1:1.35.0-4+b3 sha256=${f.ran[3]!.detail.split('sha256 ')[1]} unpacked at ${h.buildDir}/cache/debs/arm64/busybox-static/root`);
    const after = await runDoctor(h.opts({ noKvmProbe: true }));
    expect(after.checks.filter((c) => c.status === 'missing')).toEqual([]);
    expect(after.ok).toBe(true);
    expect(after.checks.find((c) => c.label === 'iso linuxaa64.efi.stub')!.detail).toBe(`${h.buildDir}/cache/debs/arm64/systemd-boot-efi/root/usr/lib/systemd/boot/efi/linuxaa64.efi.stub`);
    expect(after.checks.find((c) => c.label === 'iso i386-pc')!.detail).toBe(`${h.buildDir}/cache/debs/amd64/grub-pc-bin/root/usr/lib/grub/i386-pc`);
  });

  describe('KVM probe boots the built ISO with the fake QEMU', () => {
    async function withIso(): Promise<void> {
      await allCached(h);
      const iso = join(h.buildDir, 'build-engineer', 'x86_64', 'clawos-x86_64.iso');
      await mkdir(dirname(iso), { recursive: true });
      await writeFile(iso, 'iso');
      // The KVM device the machine data names: a plain file we can read and write.
      const kvm = join(h.t.path, 'kvm');
      await writeFile(kvm, '');
      const y = join(h.repo, 'qemu', 'x86_64.yaml');
      await writeFile(y, (await readFile(y, 'utf8')).replace('device: /dev/kvm', `device: ${kvm}`));
    }

    it('a KVM that hangs guests is a warning, not a failure', async () => {
      await withIso();
      const r = await runDoctor(h.opts({ env: { ...h.env, FAKE_QEMU_KVM_HANG: '1', FAKE_QEMU_LOG: PASS_LOG } }));
      const k = r.checks.find((c) => c.id === 'kvm:x86_64')!;
      expect(k).toMatchObject({ status: 'warn', required: false });
      expect(k.detail).toBe('KVM probe failed: no kernel output in 1 s; using TCG (TCG is slower; boot timeouts for it come from qemu/x86_64.yaml)');
      expect(r.ok).toBe(true);
    }, 30_000);

    it('a KVM that runs the guest is ok', async () => {
      await withIso();
      const r = await runDoctor(h.opts({ env: { ...h.env, FAKE_QEMU_LOG: PASS_LOG } }));
      const k = r.checks.find((c) => c.id === 'kvm:x86_64')!;
      expect(k.status).toBe('ok');
      expect(k.detail).toMatch(/^KVM runs guests: KVM probe reached kernel output in \d+\.\d s$/);
    }, 30_000);
  });
});

function capture(): { s: PassThrough; text: () => string } {
  const s = new PassThrough();
  const chunks: string[] = [];
  s.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { s, text: () => chunks.join('') };
}

describe('clawos-build doctor (the command)', () => {
  it('exit 0 with everything there, 4 with something missing; --json carries the same checks and the fix commands', async () => {
    await allCached(h);
    const out = capture();
    const io = { stdout: out.s, stderr: capture().s, doctor: h.opts({ noKvmProbe: true }) };
    expect(await doctorCommand({ repoRoot: h.repo, buildDir: h.buildDir, json: false }, io)).toBe(0);
    expect(out.text().split('\n').at(-2)).toBe('everything the build needs is here');
    await rm(join(h.bin, 'bwrap'));
    const js = capture();
    expect(await doctorCommand({ repoRoot: h.repo, buildDir: h.buildDir, json: true }, { ...io, stdout: js.s })).toBe(4);
    const doc = JSON.parse(js.text());
    expect(doc).toMatchObject({ ok: false, exit_code: 4, fix_commands: [['apt-get', 'update'], ['apt-get', 'install', '-y', '--no-install-recommends', 'bubblewrap']] });
    expect(doc.checks.find((c: { id: string }) => c.id === 'tool:bwrap')).toEqual({
      id: 'tool:bwrap',
      label: 'bwrap',
      required: true,
      why: 'every task command runs in a bubblewrap sandbox (lib/sandbox.ts)',
      status: 'missing',
      detail: 'bwrap not found in PATH',
      fix: 'apt-get install -y --no-install-recommends bubblewrap',
      install: ['bubblewrap'],
    });
  });

  it('--fix: refused (exit 4) when not root; as root it fixes and reports the state after', async () => {
    await allCached(h);
    await rm(join(h.bin, 'bwrap'));
    await script(join(h.state, 'provides', 'bubblewrap'), `printf '#!/bin/sh\\necho "bubblewrap 0.8.0"\\n' >"${h.bin}/bwrap"; chmod +x "${h.bin}/bwrap"`);
    const err = capture();
    const out = capture();
    const io = { stdout: out.s, stderr: err.s, doctor: h.opts({ noKvmProbe: true }) };
    expect(await doctorCommand({ repoRoot: h.repo, buildDir: h.buildDir, json: false, fix: true }, { ...io, isRoot: false })).toBe(4);
    expect(err.text()).toBe(
      'clawos-build: --fix runs apt-get update && apt-get install -y --no-install-recommends bubblewrap: re-run as root (sudo clawos-build doctor --fix)\n',
    );
    const out2 = capture();
    expect(await doctorCommand({ repoRoot: h.repo, buildDir: h.buildDir, json: false, fix: true }, { ...io, stdout: out2.s, isRoot: true })).toBe(0);
    const text = out2.text();
    expect(text).toContain('doctor --fix: ok: apt-get update\ndoctor --fix: ok: apt-get install -y --no-install-recommends bubblewrap\nafter --fix:\n');
    expect(text.split('after --fix:\n')[1]).toContain(`  ok       bwrap                              0.8.0 at ${h.bin}/bwrap\n`);
    expect(text.endsWith('everything the build needs is here\n')).toBe(true);
  });
});

describe('doctor data', () => {
  it('a wrong field in specs/doctor.yaml is reported with file:line:col', async () => {
    const y = join(h.repo, 'specs', 'doctor.yaml');
    await writeFile(y, (await readFile(y, 'utf8')).replace('  - command: bc\n', '  - command: bc\n    pakage: bc\n'));
    const err = await loadDoctorData(h.repo).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/^invalid data file specs\/doctor\.yaml:\nspecs\/doctor\.yaml:\d+:\d+: .*pakage/);
  });

  it('every package doctor can ask for is in specs/host-packages.txt, which bin/bootstrap installs', async () => {
    const listed = new Set(
      readFileSync(join(REPO, 'specs', 'host-packages.txt'), 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter(Boolean),
    );
    const data = await loadDoctorData(REPO);
    const named = new Set<string>([...data.tools.map((t) => t.package), ...data.files.map((f) => f.package)]);
    for (const a of ['x86_64', 'aarch64']) {
      const arch = parseYaml(readFileSync(join(REPO, 'specs', 'arch', `${a}.yaml`), 'utf8'));
      named.add(arch.kernel.compiler_package);
      for (const p of arch.iso.host_packages as string[]) named.add(p);
      const m = parseYaml(readFileSync(join(REPO, 'qemu', `${a}.yaml`), 'utf8'));
      named.add(m.binary_package);
      for (const v of m.variants) for (const f of v.firmware) named.add(f.package);
    }
    expect([...named].filter((p) => !listed.has(p)).sort()).toEqual([]);
    // The kernel source package the data names is the one kernel-config/source.yaml fetches by the lock (not a host package).
    expect(readFileSync(join(REPO, 'kernel-config', 'source.yaml'), 'utf8')).toContain(`deb: ${data.kernel_source_package}\nmember: usr/src/${data.kernel_source_package}.tar.xz`);
    expect(listed.has(data.kernel_source_package)).toBe(false);
  });

  it('compares dotted versions and finds commands like command -v', async () => {
    expect([compareVersions('7.2.22', '7.2'), compareVersions('1.15', '1.16'), compareVersions('1.16', '1.16.0'), compareVersions('10.0', '9.9')]).toEqual([1, -1, 0, 1]);
    expect(await which('pahole', `/nonexistent:${h.bin}`)).toBe(join(h.bin, 'pahole'));
    expect(await which('pahole', '/nonexistent')).toBeNull();
  });
});
