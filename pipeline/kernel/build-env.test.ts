import { describe, expect, it } from 'vitest';
import { run } from '../../lib/proc.js';
import { kbuildEnv, kbuildTimestamp } from './build-env.js';

describe('kbuildEnv', () => {
  it('formats the timestamp like date -u, and GNU date parses it back', async () => {
    expect(kbuildTimestamp(1700000000)).toBe('Tue Nov 14 22:13:20 UTC 2023');
    const r = await run(['date', '-u', '-d', kbuildTimestamp(1700000000), '+%s'], { captureStdout: true });
    expect(r.stdout.trim()).toBe('1700000000');
  });

  it('pins user, host, version and SOURCE_DATE_EPOCH', () => {
    expect(kbuildEnv(1700000000)).toEqual({
      KBUILD_BUILD_TIMESTAMP: 'Tue Nov 14 22:13:20 UTC 2023',
      KBUILD_BUILD_USER: 'clawos',
      KBUILD_BUILD_HOST: 'clawos-build',
      KBUILD_BUILD_VERSION: '1',
      SOURCE_DATE_EPOCH: '1700000000',
      LC_ALL: 'C',
    });
  });
});
