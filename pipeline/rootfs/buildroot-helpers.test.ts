import { describe, expect, it } from 'vitest';
import { initramfs } from '../../lib/cpio.js';
import { manifest } from './rootfs-layers.js';
import { readNewcGz } from './cpio-manifest.js';
import { configMap, describeDrop, droppedSymbols, parseDefconfig } from './defconfig.js';
import { errorLines, parseStepLine } from './make-progress.js';

describe('parseStepLine', () => {
  it("reads Buildroot's >>> lines, bold codes included", () => {
    expect(parseStepLine('\x1b[7m>>> busybox 1.36.1 Installing to target\x1b[27m')).toEqual({ pkg: 'busybox', version: '1.36.1', step: 'Installing to target' });
    expect(parseStepLine('>>> toolchain-buildroot  Building')).toEqual({ pkg: 'toolchain-buildroot', version: '', step: 'Building' });
    expect(parseStepLine('>>>   Finalizing target directory')).toEqual({ pkg: '', version: '', step: 'Finalizing target directory' });
    expect(parseStepLine('CC main.o')).toBeNull();
  });
  it('keeps the error lines of a failed build', () => {
    expect(errorLines(['>>> x 1 Building', 'gcc -c a.c', 'a.c:1: error: boom', 'make: *** [x] Error 1'])).toEqual(['a.c:1: error: boom', 'make: *** [x] Error 1']);
    // A post-build script's cp refused by a read-only file of the last build, not the echoed target-finalize recipe.
    expect(
      errorLines([
        '>>>   Executing post-build script /x/board/clawos/post-build.sh',
        '\t{ echo "ERROR: we shouldn\'t have a /etc/ld.so.conf file"; exit 1; } || true',
        "cp: cannot create regular file '/o/target/etc/apparmor/clawos/./a.bin': Permission denied",
        'make: *** [Makefile:788: target-finalize] Error 1',
      ]),
    ).toEqual(["cp: cannot create regular file '/o/target/etc/apparmor/clawos/./a.bin': Permission denied", 'make: *** [Makefile:788: target-finalize] Error 1']);
  });
});

describe('droppedSymbols', () => {
  it('keeps what savedefconfig or .config has, and n requests that are unset or invisible', () => {
    const req = parseDefconfig('BR2_A=y\nBR2_B="x"\n# BR2_C is not set\n# BR2_D is not set\nBR2_E=y\nBR2_F=y\n');
    const saved = configMap('BR2_A=y\n');
    const dot = configMap('BR2_A=y\nBR2_B="x"\nBR2_D=y\n# BR2_E is not set\n');
    const d = droppedSymbols(req, saved, dot);
    expect(d.map((x) => describeDrop(x, 'f'))).toEqual([
      'BR2_D: requested not set (f:4), final y',
      'BR2_E: requested y (f:5), final not set',
      'BR2_F: requested y (f:6), final absent (its dependencies are unmet)',
    ]);
  });
});

describe('readNewcGz', () => {
  it('reads back what lib/cpio writes, so the manifest matches the busybox backend format', () => {
    const entries = [
      { type: 'dir' as const, path: 'bin', mode: 0o755 },
      { type: 'file' as const, path: 'bin/busybox', mode: 0o755, data: Buffer.from('BB') },
      { type: 'symlink' as const, path: 'bin/sh', target: 'busybox' },
      { type: 'dir' as const, path: 'dev', mode: 0o755 },
      { type: 'char' as const, path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    ];
    expect(manifest(readNewcGz(initramfs(entries, 1700000000)))).toBe(manifest(entries));
  });
});
