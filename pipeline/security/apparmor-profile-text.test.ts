import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRootDir } from '../../lib/repo-root.js';
import { apparmorProfileText, formatSpecPath, quotePath, type ApparmorProfileSpec } from './apparmor-profile-text.js';

const seed = parse(readFileSync(join(repoRootDir(), 'specs/p1/apparmor-rules.yaml'), 'utf8')) as { profiles: ApparmorProfileSpec[] };

describe('apparmorProfileText', () => {
  it('renders the seed P1.6 agent profile exactly, rules in spec order, allow before deny', () => {
    const g = apparmorProfileText(seed.profiles[0]!, { header: ['first', '', 'last'], at: ['profiles', 0] });
    expect(g.text).toBe(
      [
        '# first',
        '#',
        '# last',
        '',
        'profile clawos-agent /usr/bin/ironclaw flags=(complain) {',
        '  /usr/bin/ironclaw rm,',
        '  /usr/lib/** rm,',
        '  /clawfs/specs/** r,',
        '  /clawfs/tools/** r,',
        '  /clawfs/workspace/** rwk,',
        '  capability bpf,',
        '  network inet stream,',
        '  network inet6 stream,',
        '  network unix stream,',
        '  deny /clawfs/vault/** rw,',
        '  deny /clawfs/specs/** w,',
        '  deny capability sys_module,',
        '  deny capability sys_rawio,',
        '  deny capability sys_ptrace,',
        '  deny network packet,',
        '  deny network inet raw,',
        '}',
        '',
      ].join('\n'),
    );
    // Every rule line knows its entry; headers and braces know none but the attach line.
    expect(g.lineOrigins.slice(0, 4)).toEqual([null, null, null, null]);
    expect(g.lineOrigins[4]).toEqual(['profiles', 0, 'attach']);
    expect(g.lineOrigins[9]).toEqual(['profiles', 0, 'rules', 'file', 4]);
    expect(g.lineOrigins[10]).toEqual(['profiles', 0, 'rules', 'capability', 0]);
    expect(g.lineOrigins[15]).toEqual(['profiles', 0, 'rules', 'deny', 'file', 1]);
    expect(g.lineOrigins[20]).toEqual(['profiles', 0, 'rules', 'deny', 'network', 1]);
    expect(g.lineOrigins[21]).toBeNull();
  });

  it('renders the seed wasm profile in the mode asked for, not only the spec says', () => {
    const g = apparmorProfileText(seed.profiles[1]!, { header: [], at: ['profiles', 1], mode: 'enforce' });
    expect(g.text).toBe(
      [
        '',
        'profile clawos-wasm /usr/bin/clawos-wasmd flags=(enforce) {',
        '  /usr/bin/clawos-wasmd rm,',
        '  /usr/lib/** rm,',
        '  /clawfs/tools/** rm,',
        '  network unix stream,',
        '  deny /clawfs/vault/** rw,',
        '  deny capability sys_admin,',
        '  deny capability sys_module,',
        '  deny capability bpf,',
        '  deny network inet,',
        '  deny network inet6,',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('maps x to inherit-execute in allow rules and to plain x in deny rules (a deny takes no qualifier)', () => {
    const p: ApparmorProfileSpec = {
      name: 't',
      attach: '/t',
      mode: 'enforce',
      rules: { file: [{ path: '/bin/*', perms: ['x', 'l', 'r'] }], deny: { file: [{ path: '/sbin/*', perms: ['x', 'w'] }] } },
    };
    expect(apparmorProfileText(p, { header: [], at: [] }).text).toBe('\nprofile t /t flags=(enforce) {\n  /bin/* rlix,\n  deny /sbin/* wx,\n}\n');
  });

  it('quotes a path only when AppArmor would misread it bare', () => {
    expect(quotePath('/clawfs/{a,b}/**')).toBe('/clawfs/{a,b}/**');
    expect(quotePath('/a,b')).toBe('"/a,b"');
    expect(quotePath('/a#b')).toBe('"/a#b"');
    expect(quotePath('/a"b')).toBe('"/a"b"');
  });

  it('formats a spec path the way messages name entries', () => {
    expect(formatSpecPath(['profiles', 0, 'rules', 'deny', 'file', 1])).toBe('profiles[0].rules.deny.file[1]');
  });
});
