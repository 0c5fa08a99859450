import { mkdtemp, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseDirPrefixMap, ccacheMasquerade } from './ccache-masquerade.js';

describe('baseDirPrefixMap', () => {
  it('maps the relative form of each path outside the working dir, as ccache rewrites it under base_dir', () => {
    const obj = '/w/build/kernel-engineer/x86_64/obj';
    expect(
      baseDirPrefixMap({ '/w/build/cache/src/linux-c933': '/clawos/linux', [obj]: '/clawos/obj', '/w/build/kernel-engineer/x86_64/canary': '/clawos/canary' }, obj),
    ).toEqual({ '../../../cache/src/linux-c933': '/clawos/linux', '../canary': '/clawos/canary' });
  });
});

describe('ccacheMasquerade', () => {
  it('links each compiler name to ccache and puts that dir first in PATH, with the cache env', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'masq-')), 'ccache');
    const env = await ccacheMasquerade({ ccache: '/usr/bin/ccache', env: { CCACHE_DIR: '/c' } }, dir, ['aarch64-linux-gnu-gcc', 'gcc', 'gcc'], '/usr/bin:/bin');
    expect(env).toEqual({ CCACHE_DIR: '/c', PATH: `${dir}:/usr/bin:/bin` });
    expect(await readlink(join(dir, 'gcc'))).toBe('/usr/bin/ccache');
    expect(await readlink(join(dir, 'aarch64-linux-gnu-gcc'))).toBe('/usr/bin/ccache');
    // Again: the links are kept as they are.
    await ccacheMasquerade({ ccache: '/usr/bin/ccache', env: {} }, dir, ['gcc'], '/usr/bin');
    expect(await readlink(join(dir, 'gcc'))).toBe('/usr/bin/ccache');
  });
});
