/**
 * C-02 / plan P4.1: compare what a command really calls (strace -f -n) with a
 * compiled whitelist (C-08's seccomp-filter.json for the host's arch).
 * Syscalls are matched by number, as the filter matches them: strace's names
 * and the kernel table's can differ, the numbers cannot.
 */

export interface UsedSyscall {
  nr: number;
  /** The name strace printed. */
  name: string;
  calls: number;
}

// "1234 [  39] getpid() = 1234", "[ 257] openat(...", "1234 [   0] <... read resumed>..." (-f and -n).
const LINE = /^(?:\d+\s+)?\[\s*(\d+)\]\s+(<\.\.\.\s+)?([A-Za-z_][A-Za-z0-9_]*)/;

/** Syscalls in `strace -f -n -o FILE` output; a call split in unfinished/resumed counts once. */
export function parseStraceTrace(text: string): UsedSyscall[] {
  const used = new Map<number, UsedSyscall>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const nr = Number(m[1]);
    const u = used.get(nr) ?? { nr, name: m[3]!, calls: 0 };
    if (!m[2]) u.calls++;
    used.set(nr, u);
  }
  return [...used.values()].sort((a, b) => a.nr - b.nr);
}

/** The parts of seccomp-filter.json the comparison reads. */
export interface CompiledWhitelist {
  arch: string;
  default_action: string;
  spec: { spec_id: string; version: string; path: string };
  syscalls: Record<string, number>;
  aliases_applied: { name: string; group: string; to: string[] }[];
}

export function isCompiledWhitelist(v: unknown): v is CompiledWhitelist {
  const o = v as CompiledWhitelist;
  return (
    !!o &&
    typeof o.arch === 'string' &&
    typeof o.default_action === 'string' &&
    !!o.spec &&
    !!o.syscalls &&
    typeof o.syscalls === 'object' &&
    Object.values(o.syscalls).every((n) => Number.isInteger(n)) &&
    Array.isArray(o.aliases_applied)
  );
}

export interface ProfileReport {
  used: UsedSyscall[];
  /** Used, and the filter would apply its default action to them. */
  notWhitelisted: UsedSyscall[];
  /** In the whitelist, never called. */
  unused: { name: string; nr: number }[];
  aliasesApplied: CompiledWhitelist['aliases_applied'];
}

export function compareProfile(used: UsedSyscall[], w: CompiledWhitelist): ProfileReport {
  const allowedNrs = new Set(Object.values(w.syscalls));
  const usedNrs = new Set(used.map((u) => u.nr));
  return {
    used,
    notWhitelisted: used.filter((u) => !allowedNrs.has(u.nr)),
    unused: Object.entries(w.syscalls)
      .filter(([, nr]) => !usedNrs.has(nr))
      .map(([name, nr]) => ({ name, nr }))
      .sort((a, b) => a.nr - b.nr),
    aliasesApplied: w.aliases_applied,
  };
}

/** The report as lines for a person. */
export function formatProfile(r: ProfileReport, w: CompiledWhitelist): string[] {
  const calls = r.used.reduce((n, u) => n + u.calls, 0);
  const usedList = (l: UsedSyscall[]) => l.map((u) => `${u.name}(${u.nr}) x${u.calls}`).join(', ');
  return [
    `used ${r.used.length} distinct syscalls in ${calls} calls; the whitelist allows ${Object.keys(w.syscalls).length}`,
    r.notWhitelisted.length
      ? `used but NOT whitelisted (${r.notWhitelisted.length}; the filter would ${w.default_action === 'kill_process' ? 'kill the process' : w.default_action === 'errno' ? 'fail them with EPERM' : 'log them'}): ${usedList(r.notWhitelisted)}`
      : 'used but not whitelisted: none',
    r.unused.length ? `whitelisted but unused (${r.unused.length}): ${r.unused.map((u) => `${u.name}(${u.nr})`).join(', ')}` : 'whitelisted but unused: none',
    r.aliasesApplied.length ? `aliases applied: ${r.aliasesApplied.map((a) => `${a.name} -> ${a.to.join(', ')}`).join('; ')}` : 'aliases applied: none',
  ];
}
