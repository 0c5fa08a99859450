/**
 * Buildroot's step lines: `>>> busybox 1.36.1 Building`, `>>> linux custom
 * Installing to target`, `>>>   Finalizing target directory` (no package).
 * Buildroot wraps them in terminal bold codes, which are stripped here.
 */

export interface BuildrootStepLine {
  /** '' for the steps of the whole build (finalizing, images). */
  pkg: string;
  version: string;
  step: string;
}

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]/g;

export function parseStepLine(raw: string): BuildrootStepLine | null {
  const line = raw.replace(ANSI_RE, '').trimEnd();
  if (!line.startsWith('>>> ')) return null;
  const rest = line.slice(4);
  if (rest.startsWith(' ')) return { pkg: '', version: '', step: rest.trim() };
  const m = /^(\S+) (\S*) (.+)$/.exec(rest);
  if (!m) return { pkg: '', version: '', step: rest.trim() };
  return { pkg: m[1]!, version: m[2]!, step: m[3]!.trim() };
}

/** "busybox 1.36.1: Building", "toolchain-buildroot: Building", "Finalizing target directory". */
export function describeStep(s: BuildrootStepLine): string {
  if (!s.pkg) return s.step;
  return `${s.pkg}${s.version ? ` ${s.version}` : ''}: ${s.step}`;
}

/**
 * The lines of a failed build that say why: compiler errors, make's `***` lines
 * and a tool's refusal to write or read a file. Not make's echo of a recipe that
 * merely contains an error message (Buildroot's target-finalize prints
 * `{ echo "ERROR: we shouldn't have a /etc/ld.so.conf file"; exit 1; } || true`).
 */
export function errorLines(tail: string[], max = 8): string[] {
  const lines = tail.map((l) => l.replace(ANSI_RE, '').trimEnd()).filter((l) => l && !l.startsWith('>>> '));
  const recipe = (l: string) => /echo\s+["']ERROR/.test(l);
  const errs = lines.filter((l) => !recipe(l) && /\berror\b|\*\*\*|ERROR|[Ff]atal|: Permission denied$|: cannot (create|open|remove|stat)\b/.test(l));
  return (errs.length ? errs : lines).slice(-max);
}
