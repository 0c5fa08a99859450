import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../../lib/repo-root.js';
import { loadOfflineSpec, overrideFindings, pkgVar, planOffline, renderLocalMk, type OfflineSpec } from './buildroot-offline.js';

const spec: OfflineSpec = {
  buildroot: { release: 'r', sha256: '0'.repeat(64) },
  sources: { busybox: { debian: 'busybox' }, 'host-tar': { debian: 'tar' }, 'host-patchelf': { debian: 'patchelf', buildroot_autoreconf: true } },
  host_tools: { 'host-fakeroot': '/usr/bin/fakeroot' },
  toolchain: {},
};

describe('the Buildroot offline plan', () => {
  it('names every override with the version wanted, the version used and the Buildroot patches left out', async () => {
    const { path: br, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      await mkdir(join(br, 'package', 'busybox'), { recursive: true });
      await writeFile(join(br, 'package', 'busybox', '0001-fix.patch'), '');
      await writeFile(join(br, 'package', 'busybox', 'busybox.mk'), '');
      const info = {
        busybox: { type: 'target', version: '1.38.0', downloads: [{ source: 'busybox-1.38.0.tar.bz2' }] },
        'host-patchelf': { type: 'host', version: '0.13', downloads: [{ source: 'patchelf-0.13.tar.bz2' }] },
        'host-fakeroot': { type: 'host', version: '2.1.4', downloads: [{ source: 'fakeroot_2.1.4.orig.tar.xz' }] },
        'host-zstd': { type: 'host', version: '1.5.7', downloads: [{ source: 'zstd-1.5.7.tar.gz' }] },
        skeleton: { type: 'target', version: '', downloads: [] },
        // A local site (our own packages): nothing to download.
        'clawos-init': { type: 'target', version: '1.0', downloads: [{ source: 'clawos-init-1.0.tar.gz', uris: ['local+/r/board', 'https|urlencode+https://sources.buildroot.net'] }] },
        // show-info's own patch list wins over the package dir's.
        'host-tar': { type: 'host', version: '1.35', downloads: [{ source: 'tar-1.35.cpio.gz' }], patches: ['package/tar/0002-b.patch', 'package/tar/0001-a.patch'] },
      };
      const plan = await planOffline(info, spec, new Map([['busybox', '1:1.35.0-4+deb12u1']]), br);
      expect(plan.rows).toEqual([
        { package: 'busybox', wanted: '1.38.0', used: 'debian:busybox 1:1.35.0-4+deb12u1', buildrootPatchesNotApplied: ['package/busybox/0001-fix.patch'] },
        { package: 'host-fakeroot', wanted: '2.1.4', used: 'host:/usr/bin/fakeroot', buildrootPatchesNotApplied: [] },
        { package: 'host-patchelf', wanted: '0.13', used: 'debian:patchelf (not locked)', buildrootPatchesNotApplied: [] },
        { package: 'host-tar', wanted: '1.35', used: 'debian:tar (not locked)', buildrootPatchesNotApplied: ['package/tar/0001-a.patch', 'package/tar/0002-b.patch'] },
      ]);
      expect(plan.needsDownload).toEqual([{ package: 'host-zstd', version: '1.5.7', files: ['zstd-1.5.7.tar.gz'] }]);
      expect(overrideFindings(plan.rows).map((f) => `${f.severity} ${f.id}: ${f.message}`)).toEqual([
        'MEDIUM buildroot-override:busybox: busybox: Buildroot wants 1.38.0, built from debian:busybox 1:1.35.0-4+deb12u1; Buildroot patches not applied: package/busybox/0001-fix.patch',
        'LOW buildroot-override:host-fakeroot: host-fakeroot: Buildroot wants 2.1.4, built from host:/usr/bin/fakeroot; Buildroot has no patches for it',
        'LOW buildroot-override:host-patchelf: host-patchelf: Buildroot wants 0.13, built from debian:patchelf (not locked); Buildroot has no patches for it',
        'MEDIUM buildroot-override:host-tar: host-tar: Buildroot wants 1.35, built from debian:tar (not locked); Buildroot patches not applied: package/tar/0001-a.patch, package/tar/0002-b.patch',
      ]);
    } finally {
      await cleanup();
    }
  });

  it('writes local.mk: an OVERRIDE_SRCDIR per tree, and the host tool installed in place of the package', () => {
    expect(pkgVar('host-automake')).toBe('HOST_AUTOMAKE');
    const mk = renderLocalMk(new Map([['host-patchelf', '/s/patchelf'], ['busybox', '/s/busybox']]), spec, '/s/empty');
    expect(mk.split('\n').slice(2)).toEqual([
      'BUSYBOX_OVERRIDE_SRCDIR = /s/busybox',
      'HOST_PATCHELF_OVERRIDE_SRCDIR = /s/patchelf',
      'HOST_PATCHELF_AUTORECONF = YES',
      'HOST_FAKEROOT_OVERRIDE_SRCDIR = /s/empty',
      'HOST_FAKEROOT_AUTORECONF = NO',
      'define HOST_FAKEROOT_CONFIGURE_CMDS',
      '\ttrue',
      'endef',
      'define HOST_FAKEROOT_BUILD_CMDS',
      '\ttrue',
      'endef',
      'define HOST_FAKEROOT_INSTALL_CMDS',
      '\tmkdir -p $(HOST_DIR)/bin',
      `\tprintf '#!/bin/sh\\nexec /usr/bin/fakeroot "$$@"\\n' >$(HOST_DIR)/bin/fakeroot`,
      '\tchmod 0755 $(HOST_DIR)/bin/fakeroot',
      'endef',
      '',
    ]);
  });

  it('loads the repository spec', async () => {
    const s = await loadOfflineSpec(repoRootDir());
    expect(s.sources['busybox']).toEqual({ debian: 'busybox' });
    expect(s.host_tools['host-fakeroot']).toBe('/usr/bin/fakeroot');
  });
});
