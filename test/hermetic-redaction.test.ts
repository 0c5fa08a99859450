/**
 * A planted secret goes through the real process layer (sandboxed and not) into
 * agent logs and a JSON report; a grep of the whole directory finds none of its forms.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { writeJsonAtomic } from '../lib/atomic-write.js';
import { run } from '../lib/proc.js';
import { Redactor } from '../lib/redact.js';
import { probeSandbox, sandboxWrapper } from '../lib/sandbox.js';
import { AgentLogs } from '../pipeline/run/agent-log.js';

const NAME = 'CLAWOS_TEST_SIGNING_TOKEN';
let tmp: DirectoryResult | null = null;
afterEach(async () => {
  delete process.env[NAME];
  await tmp?.cleanup();
  tmp = null;
});

/** `grep -r -F` over the dir: the lines that contain any of the needles. */
async function grepDir(dir: string, needles: string[]): Promise<string[]> {
  const r = await run(['grep', '-r', '-F', ...needles.flatMap((n) => ['-e', n]), dir], { captureStdout: true });
  expect([0, 1]).toContain(r.exitCode); // 2 would be a grep error, which must not pass as "nothing found"
  return r.stdout.split('\n').filter(Boolean);
}

describe('redaction through the process layer', () => {
  it('a secret from a named env var and a passphrase never reach the logs or the report', async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    const build = join(tmp.path, 'build');
    const outDir = join(build, 'security');
    await mkdir(outDir, { recursive: true });
    // Characters that base64 and percent-encoding both change.
    const token = `tok/${randomBytes(12).toString('hex')}+=&Z`;
    const passphrase = `pass ${randomBytes(8).toString('hex')}`;
    process.env[NAME] = token;
    const redactor = Redactor.fromEnv([NAME, 'CLAWOS_UNSET_SECRET']).add('signing-passphrase', passphrase);
    expect(redactor.secretNames).toEqual([NAME, 'signing-passphrase']);

    const logs = new AgentLogs(join(build, 'logs'));
    const log = redactor.writer(logs.writer('security', 'F-01'));
    const mode = await probeSandbox();
    const script = [
      `echo "token is $${NAME}"`,
      `echo "to stderr: $${NAME}" >&2`,
      `printf %s "$${NAME}" | base64`,
      `printf %s "x$${NAME}" | base64`,
      `printf %s "xy$${NAME}" | base64`,
      `python3 -c "import os,urllib.parse; print('https://example.invalid/?t=' + urllib.parse.quote(os.environ['${NAME}'], safe=''))"`,
      `echo "passphrase: $PASS"`,
      'exit 3',
    ].join('\n');
    const results = [];
    for (const wrap of [undefined, sandboxWrapper(mode, { task: 'F-01', outDir, network: false, readOnly: [build] })]) {
      const r = await run(['bash', '-c', script, 'arg0', token], {
        cwd: outDir,
        env: { [NAME]: token, PASS: passphrase },
        wrap,
        redact: redactor,
        sink: (_s, line) => log(line),
      });
      expect(r.exitCode).toBe(3);
      results.push(r);
      // The tail that goes into messages is redacted too.
      expect(r.tail[0]).toBe(`token is [REDACTED:${NAME}]`);
      expect(r.reproducer).toContain(`[REDACTED:${NAME}]`);
      expect(r.reproducer).toContain('[REDACTED:signing-passphrase]');
    }
    log(`error: signing failed with passphrase ${passphrase}`);
    await writeJsonAtomic(
      join(build, 'gates', 'P1', 'report.json'),
      redactor.value({ message: `failed: ${results[0]!.tail.join(' | ')}`, env: { [NAME]: token }, raw: [token, { nested: passphrase }] }),
    );

    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const forms = [
      token,
      passphrase,
      b64(token).slice(0, -4),
      b64(`x${token}`).slice(4, -4),
      b64(`xy${token}`).slice(4, -4),
      encodeURIComponent(token),
      passphrase.split(' ')[1]!,
    ];
    expect(await grepDir(build, forms)).toEqual([]);
    // It is really there, redacted, and the dir is not just empty.
    const text = await readFile(logs.pathFor('security'), 'utf8');
    expect(text.split(`token is [REDACTED:${NAME}]`)).toHaveLength(3);
    expect(text).toContain(`to stderr: [REDACTED:${NAME}]`);
    expect(text).toContain('https://example.invalid/?t=[REDACTED:CLAWOS_TEST_SIGNING_TOKEN]');
    expect(text).toContain('passphrase: [REDACTED:signing-passphrase]');
    expect(text).toContain('error: signing failed with passphrase [REDACTED:signing-passphrase]');
    expect(text).toMatch(/\$ cd \S+ && env .*\[REDACTED:CLAWOS_TEST_SIGNING_TOKEN\]/);
    expect(text).toMatch(/\$ cd \S+ && bwrap .*--setenv CLAWOS_TEST_SIGNING_TOKEN \$'\[REDACTED:CLAWOS_TEST_SIGNING_TOKEN\]'/);
    const report = JSON.parse(await readFile(join(build, 'gates', 'P1', 'report.json'), 'utf8'));
    expect(report.env).toEqual({ [NAME]: `[REDACTED:${NAME}]` });
    expect(report.raw).toEqual([`[REDACTED:${NAME}]`, { nested: '[REDACTED:signing-passphrase]' }]);
  });

  it('the same run without a redactor does leak (the check above can fail)', async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    const token = `tok-${randomBytes(12).toString('hex')}`;
    const logs = new AgentLogs(join(tmp.path, 'logs'));
    const log = logs.writer('security', 'F-01');
    await run(['bash', '-c', `echo "$${NAME}"`], { env: { [NAME]: token }, sink: (_s, l) => log(l) });
    expect((await grepDir(tmp.path, [token])).length).toBe(2); // the reproducer and the echo
  });
});
