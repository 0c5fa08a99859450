/**
 * Compiling a generated profile with the host's apparmor_parser into binary
 * policy a kernel takes through /sys/kernel/security/apparmor/.load, and
 * tracing the parser's complaints back to the spec entry they came from.
 *
 * The guest kernel is not the host's: --features-file names the feature set the
 * policy is compiled for (the guest's own, captured in specs/apparmor/), and
 * --config-file=/dev/null keeps the host's /etc/apparmor/parser.conf
 * (policy-features=…) out of it. Nothing is loaded on the host (--skip-kernel-load)
 * and nothing is cached (--skip-cache), so the output depends only on the inputs.
 */
import type { Runner } from '../../lib/proc.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import type { ProfileText, SpecPath } from './apparmor-profile-text.js';

export const APPARMOR_PARSER = 'apparmor_parser';
/** The Debian package that provides it (bootstrap installs it from specs/host-packages.txt). */
export const APPARMOR_PACKAGE = 'apparmor';

export type { Runner } from '../../lib/proc.js';

export function parserArgv(o: { featuresFile: string; source: string; output: string }): string[] {
  return [
    APPARMOR_PARSER,
    '--config-file=/dev/null',
    '--skip-kernel-load',
    '--skip-cache',
    '--features-file',
    o.featuresFile,
    '--ofile',
    o.output,
    o.source,
  ];
}

/** "AppArmor parser version 3.0.8" -> "3.0.8"; null when the parser does not run. */
export async function parserVersion(run: Runner): Promise<{ version: string | null; error?: string }> {
  const r = await run([APPARMOR_PARSER, '--version'], { captureStdout: true, timeoutMs: 30_000 });
  const m = /AppArmor parser version (\S+)/.exec(r.stdout);
  if (r.ok && m) return { version: m[1]! };
  return { version: null, error: r.spawnError ?? (r.tail.filter((l) => l.trim()).at(-1) || `exit status ${r.exitCode ?? r.signal}`) };
}

export interface CompileResult {
  ok: boolean;
  /** The parser's stderr (its errors and warnings). */
  messages: string[];
  /** The parser could not be started at all. */
  infra?: string;
}

export async function compileProfile(run: Runner, o: { featuresFile: string; source: string; output: string; timeoutMs?: number }): Promise<CompileResult> {
  const messages: string[] = [];
  const r = await run(parserArgv(o), {
    timeoutMs: o.timeoutMs ?? 120_000,
    sink: (stream, line) => {
      if (stream === 'stderr' && line.trim()) messages.push(line);
    },
  });
  if (r.spawnError) return { ok: false, messages, infra: `${APPARMOR_PARSER} could not be started: ${r.spawnError}` };
  // exec through a shell: a missing program is status 127.
  if (r.exitCode === 127) return { ok: false, messages, infra: `${APPARMOR_PARSER} not found (Debian package ${APPARMOR_PACKAGE})` };
  if (!r.ok && !messages.length) messages.push(`${APPARMOR_PARSER} exit status ${r.exitCode ?? r.signal}${r.timedOut ? ' (timed out)' : ''}`);
  return { ok: r.ok, messages };
}

export interface ParserDiagnosis {
  /** Line of the generated text the parser blamed, if it said (or showed) one. */
  line: number | null;
  /** That line's text, trimmed. */
  rule: string | null;
  /** The spec entry the line came from. */
  origin: SpecPath | null;
}

const AT_LINE = /^AppArmor parser error\b.*?\bline (\d+)\b/;
const INPUT_LINE = /Unable to parse input line '(.*)'$/;

/**
 * Which generated line (and so which spec entry) the parser's messages point at:
 * its "… at line N: …" when it gives one, else the rule whose path it quotes
 * ("Unable to parse input line '/a/{b'", the regex errors).
 */
export function diagnoseParserError(messages: string[], generated: ProfileText): ParserDiagnosis {
  const lines = generated.text.split('\n');
  const at = (n: number): ParserDiagnosis => ({ line: n, rule: lines[n - 1]?.trim() ?? null, origin: generated.lineOrigins[n - 1] ?? null });
  for (const m of messages) {
    const a = AT_LINE.exec(m);
    if (a) {
      const n = Number(a[1]);
      if (n >= 1 && n <= lines.length) return at(n);
    }
  }
  for (const m of messages) {
    const q = INPUT_LINE.exec(m);
    if (!q) continue;
    const frag = q[1]!;
    // The parser quotes the path token; the first rule carrying it is the culprit.
    const i = lines.findIndex((l, idx) => generated.lineOrigins[idx] && (l.includes(` ${frag} `) || l.includes(` "${frag}" `)));
    if (i >= 0) return at(i + 1);
  }
  return { line: null, rule: null, origin: null };
}
