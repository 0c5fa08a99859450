/**
 * P1.6 profile entry -> AppArmor profile text (plan P2.8, task F-06).
 * Each generated rule line remembers the spec entry it came from, so a line the
 * parser rejects can be traced back to file:line:col in the spec.
 */

export type ApparmorMode = 'complain' | 'enforce';
export const APPARMOR_MODES: readonly ApparmorMode[] = ['complain', 'enforce'];

export interface FileRule {
  path: string;
  perms: string[];
}
export interface NetworkRule {
  family: string;
  type?: string;
}
export interface RuleSet {
  file?: FileRule[];
  capability?: string[];
  network?: NetworkRule[];
}
/** One entry of P1.6 `profiles` (specs/schemas/p1/apparmor-rules.schema.json#/definitions/profile). */
export interface ApparmorProfileSpec {
  name: string;
  attach: string;
  mode: ApparmorMode;
  rules: RuleSet & { deny?: RuleSet };
}

/** A path inside the YAML document ("profiles", 0, "rules", "file", 2). */
export type SpecPath = (string | number)[];

export interface ProfileText {
  text: string;
  /** lineOrigins[n - 1]: the spec entry line n came from (null for headers, braces, comments). */
  lineOrigins: (SpecPath | null)[];
}

/** Allowed-perm order in the rule; P1.6's x is inherit-execute ("ix"). */
const ALLOW_ORDER: Array<[string, string]> = [
  ['r', 'r'],
  ['w', 'w'],
  ['m', 'm'],
  ['k', 'k'],
  ['l', 'l'],
  ['x', 'ix'],
];
/** A deny rule takes no exec qualifier: "deny /p x,". */
const DENY_ORDER: Array<[string, string]> = ALLOW_ORDER.map(([k, v]) => [k, k === 'x' ? 'x' : v]);

/** Paths with only these characters go unquoted (globs included); anything else is quoted. */
const BARE_PATH = /^[A-Za-z0-9/_.*?{}[\],^@+:=~-]+$/;

/** A comma outside {a,b} would end the rule early. */
function strayComma(p: string): boolean {
  let depth = 0;
  for (const c of p) {
    if (c === '{') depth++;
    else if (c === '}') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) return true;
  }
  return false;
}

export function quotePath(p: string): string {
  return BARE_PATH.test(p) && !strayComma(p) ? p : `"${p}"`;
}

function modeString(perms: string[], order: Array<[string, string]>): string {
  return order.filter(([k]) => perms.includes(k)).map(([, v]) => v).join('');
}

export interface ProfileTextOptions {
  /** Comment lines above the profile (without "# "). */
  header: string[];
  /** Where the profile sits in its document: ["profiles", 0]. */
  at: SpecPath;
  /** The mode to compile; defaults to the spec's. */
  mode?: ApparmorMode;
}

/** The profile as AppArmor policy text, rules in spec order: allow file, capability, network, then the deny ones. */
export function apparmorProfileText(p: ApparmorProfileSpec, o: ProfileTextOptions): ProfileText {
  const lines: string[] = [];
  const origins: (SpecPath | null)[] = [];
  const add = (line: string, origin: SpecPath | null = null) => {
    lines.push(line);
    origins.push(origin);
  };
  for (const h of o.header) add(h ? `# ${h}` : '#');
  add('');
  const mode = o.mode ?? p.mode;
  add(`profile ${p.name} ${quotePath(p.attach)} flags=(${mode}) {`, [...o.at, 'attach']);

  const section = (rules: RuleSet | undefined, deny: boolean) => {
    if (!rules) return;
    const base: SpecPath = [...o.at, 'rules', ...(deny ? ['deny'] : [])];
    const prefix = deny ? 'deny ' : '';
    rules.file?.forEach((r, i) => add(`  ${prefix}${quotePath(r.path)} ${modeString(r.perms, deny ? DENY_ORDER : ALLOW_ORDER)},`, [...base, 'file', i]));
    rules.capability?.forEach((c, i) => add(`  ${prefix}capability ${c},`, [...base, 'capability', i]));
    rules.network?.forEach((n, i) => add(`  ${prefix}network ${n.family}${n.type ? ` ${n.type}` : ''},`, [...base, 'network', i]));
  };
  section(p.rules, false);
  section(p.rules.deny, true);
  add('}');
  return { text: lines.join('\n') + '\n', lineOrigins: origins };
}

/** "profiles[0].rules.deny.file[1]" */
export function formatSpecPath(path: SpecPath): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}
