import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { apparmorProfileText, type ApparmorProfileSpec } from './apparmor-profile-text.js';
import { compileProfile, diagnoseParserError, parserArgv, parserVersion } from './apparmor-parser.js';

const FEATURES = join(repoRootDir(), 'specs/apparmor/kernel-features.txt');
const profile: ApparmorProfileSpec = {
  name: 'p',
  attach: '/usr/bin/p',
  mode: 'enforce',
  rules: { file: [{ path: '/ok/**', perms: ['r'] }, { path: '/bad/{a,b', perms: ['r'] }], capability: ['bpf'] },
};
const generated = apparmorProfileText(profile, { header: ['h'], at: ['profiles', 3] });

describe('apparmor_parser', () => {
  it('is called with argv only, without the host config, cache or kernel', () => {
    expect(parserArgv({ featuresFile: 'f', source: 's.apparmor', output: 'o.bin' })).toEqual([
      'apparmor_parser',
      '--config-file=/dev/null',
      '--skip-kernel-load',
      '--skip-cache',
      '--features-file',
      'f',
      '--ofile',
      'o.bin',
      's.apparmor',
    ]);
  });

  it('traces "Unable to parse input line" (regex errors, which give no line number) to the rule that carries the path', () => {
    // Recorded from apparmor_parser 3.0.8 on this profile.
    const messages = [
      'apparmor_parser: Regex grouping error: Unclosed grouping or character class, expecting close }',
      "apparmor_parser: Unable to parse input line '/bad/{a,b'",
      'ERROR processing regexs for profile p, failed to load',
    ];
    expect(diagnoseParserError(messages, generated)).toEqual({ line: 5, rule: '/bad/{a,b r,', origin: ['profiles', 3, 'rules', 'file', 1] });
  });

  it('uses the line number the parser gives, and nothing when it gives none it can place', () => {
    expect(diagnoseParserError(['AppArmor parser error for x in profile x at line 6: Invalid capability foo.'], generated)).toEqual({
      line: 6,
      rule: 'capability bpf,',
      origin: ['profiles', 3, 'rules', 'capability', 0],
    });
    expect(diagnoseParserError(['AppArmor parser error for x in profile x at line 99: oops', 'something else'], generated)).toEqual({ line: null, rule: null, origin: null });
  });

  it('really rejects the profile, with the message the diagnosis reads', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      await writeFile(join(d, 'p.apparmor'), generated.text);
      const r = await compileProfile(run, { featuresFile: FEATURES, source: join(d, 'p.apparmor'), output: join(d, 'p.bin') });
      expect(r).toEqual({
        ok: false,
        messages: [
          'apparmor_parser: Regex grouping error: Unclosed grouping or character class, expecting close }',
          "apparmor_parser: Unable to parse input line '/bad/{a,b'",
          'ERROR processing regexs for profile p, failed to load',
        ],
      });
      expect(diagnoseParserError(r.messages, generated).line).toBe(5);

      const ok = apparmorProfileText({ ...profile, rules: { file: [{ path: '/ok/**', perms: ['r'] }] } }, { header: [], at: [] });
      await writeFile(join(d, 'ok.apparmor'), ok.text);
      expect(await compileProfile(run, { featuresFile: FEATURES, source: join(d, 'ok.apparmor'), output: join(d, 'ok.bin') })).toEqual({ ok: true, messages: [] });
      expect((await readFile(join(d, 'ok.bin'))).length).toBeGreaterThan(100);
      expect((await parserVersion(run)).version).toMatch(/^\d+\.\d+\.\d+$/);
    } finally {
      await cleanup();
    }
  });
});
