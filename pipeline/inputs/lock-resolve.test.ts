import { describe, expect, it } from 'vitest';
import { repoRootDir } from '../../lib/repo-root.js';
import { loadLock } from '../catalog/input-lock.js';
import { wantedInputs } from './lock-resolve.js';

describe('wantedInputs', () => {
  it('locks every selectable kernel source (kernel-config/source*.yaml), not only the default one', async () => {
    const wanted = await wantedInputs(repoRootDir());
    expect(wanted.filter((w) => w.name.startsWith('linux-source-'))).toEqual([
      { name: 'linux-source-6.1', arch: 'all', why: 'kernel source (A-01, kernel-config/source-6.1.yaml)', files: ['usr/src/linux-source-6.1.tar.xz'] },
      { name: 'linux-source-6.12', arch: 'all', why: 'kernel source (A-01, kernel-config/source.yaml)', files: ['usr/src/linux-source-6.12.tar.xz'] },
    ]);
  });

  it('the committed lock pins both, with the tarball sha256 the builds check', async () => {
    const { lock } = await loadLock(repoRootDir());
    const pin = (n: string) => lock.debs.find((d) => d.name === n);
    expect(pin('linux-source-6.12')).toMatchObject({
      version: '6.12.118-1~deb12u1',
      sha256: '896aff3b39299fa0dd36fef4f5db56ab189182e39abbbb1227dafdc7fcfe3fc3',
      files: { 'usr/src/linux-source-6.12.tar.xz': 'c93391b6a4884e6428ffbfbb8ce6340229ad28dc421e9f19bc081740b1ab34b2' },
    });
    expect(pin('linux-source-6.1')).toMatchObject({
      version: '6.1.192-2',
      files: { 'usr/src/linux-source-6.1.tar.xz': '4d415b3d364834fd818270e88813e90323bbfce4f519a0e6bd4940ddcd7df693' },
    });
  });
});
