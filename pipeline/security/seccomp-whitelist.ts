/**
 * P1.2, the seccomp whitelist (specs/p1/seccomp-whitelist.yaml), resolved
 * against one arch's syscall table.
 *
 * Aliases: `aliases: { stat: [newfstatat] }` applies ONLY to names listed
 * there, and it applies on every arch: its targets are always allowed. The
 * name itself stays allowed where it is a syscall too (open, stat, poll,
 * epoll_wait on x86_64), since libc may call either: glibc 2.36 on x86_64
 * calls newfstatat for stat() and fstat() but the poll syscall for poll().
 * A name that is neither a syscall nor aliased fails, with every such name.
 */
import type { SpecProblem } from '../p1-specs/spec-rules.js';
import type { DefaultAction } from './seccomp-bpf.js';

export interface SeccompWhitelist {
  spec_id: 'P1.2';
  version: string;
  owner: string;
  title: string;
  default_action: DefaultAction;
  /** Also allow execve, so clawos-seccomp-exec can exec the program after installing the filter. */
  allow_exec: boolean;
  syscalls: Record<string, string[]>;
  aliases: Record<string, string[]>;
}

/** The syscall the loader itself needs after installing the filter (allow_exec). */
export const EXEC_SYSCALL = 'execve';

export interface ResolvedSyscall {
  name: string;
  nr: number;
  /** Why it is allowed: the spec's group, an alias of a listed name, or allow_exec. */
  via: { group: string } | { alias: string; group: string } | { allow_exec: true };
}

export interface AliasApplied {
  name: string;
  group: string;
  to: string[];
  /** The name is a syscall of this arch as well, and allowed as such. */
  name_is_syscall: boolean;
}

export interface ResolveProblem {
  /** Path in the spec document, for file:line:col. */
  path: (string | number)[];
  message: string;
}

export interface Resolution {
  allowed: ResolvedSyscall[];
  aliasesApplied: AliasApplied[];
  problems: ResolveProblem[];
}

/**
 * Resolve every listed name on one arch. `archName` only words the messages.
 * Problems are grouped per spec entry: "syscalls.file_io: not syscalls on aarch64: open, stat".
 */
export function resolveWhitelist(spec: SeccompWhitelist, numbers: ReadonlyMap<string, number>, archName: string): Resolution {
  const allowed = new Map<string, ResolvedSyscall>();
  const aliasesApplied: AliasApplied[] = [];
  const problems: ResolveProblem[] = [];
  const add = (name: string, via: ResolvedSyscall['via']) => {
    const nr = numbers.get(name);
    if (nr !== undefined && !allowed.has(name)) allowed.set(name, { name, nr, via });
  };
  for (const [group, names] of Object.entries(spec.syscalls)) {
    const missing: string[] = [];
    for (const name of names) {
      const isSyscall = numbers.has(name);
      if (isSyscall) add(name, { group });
      const to = spec.aliases[name];
      if (to) {
        const bad = to.filter((t) => !numbers.has(t));
        if (bad.length) {
          problems.push({ path: ['aliases', name], message: `aliases.${name}: alias targets not syscalls on ${archName}: ${bad.join(', ')}` });
          continue;
        }
        for (const t of to) add(t, { alias: name, group });
        aliasesApplied.push({ name, group, to: [...to], name_is_syscall: isSyscall });
      } else if (!isSyscall) missing.push(name);
    }
    if (missing.length) {
      problems.push({ path: ['syscalls', group], message: `syscalls.${group}: not syscalls on ${archName}: ${missing.join(', ')}` });
    }
  }
  if (spec.allow_exec) {
    if (numbers.has(EXEC_SYSCALL)) add(EXEC_SYSCALL, { allow_exec: true });
    else problems.push({ path: ['allow_exec'], message: `allow_exec: ${EXEC_SYSCALL} is not a syscall on ${archName}` });
  }
  return { allowed: [...allowed.values()].sort((a, b) => a.nr - b.nr), aliasesApplied, problems };
}

/**
 * Spec-level rules that need no syscall table (for spec-freeze's semantic
 * checks): an alias must name a listed syscall, and a name listed twice is a
 * mistake a reviewer would miss.
 */
export function checkSeccompWhitelist(spec: unknown): SpecProblem[] {
  const s = spec as SeccompWhitelist;
  const out: SpecProblem[] = [];
  const where = new Map<string, string>();
  for (const [group, names] of Object.entries(s.syscalls ?? {})) {
    names.forEach((n, i) => {
      const first = where.get(n);
      if (first !== undefined) out.push({ path: ['syscalls', group, i], message: `syscalls.${group}: ${n} is already listed in syscalls.${first}` });
      else where.set(n, group);
    });
  }
  for (const [name, to] of Object.entries(s.aliases ?? {})) {
    if (!where.has(name)) out.push({ path: ['aliases', name], message: `aliases.${name}: ${name} is not in any syscalls group` });
    if (to.includes(name)) out.push({ path: ['aliases', name], message: `aliases.${name}: an alias cannot map a name to itself` });
  }
  return out;
}
