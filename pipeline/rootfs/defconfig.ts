/**
 * Buildroot defconfig and .config files, and the check Buildroot does not do:
 * like kconfig, it drops a requested symbol whose dependencies are unmet
 * without a word. A symbol is kept when `make savedefconfig` wrote it with the
 * requested value, or (savedefconfig leaves out values equal to the default)
 * when the full .config has it.
 */

/** One `BR2_X=value` or `# BR2_X is not set` line. */
export interface BrSymbol {
  symbol: string;
  /** As written ('y', '"a b"', '0x10'), or 'n' for `is not set`. */
  value: string;
  line: number;
}

const SET_RE = /^(BR2_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^# (BR2_[A-Za-z0-9_]+) is not set\s*$/;

export function parseDefconfig(text: string): BrSymbol[] {
  const out: BrSymbol[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    const set = SET_RE.exec(line);
    if (set) out.push({ symbol: set[1]!, value: set[2]!, line: i + 1 });
    const unset = UNSET_RE.exec(line);
    if (unset) out.push({ symbol: unset[1]!, value: 'n', line: i + 1 });
  });
  return out;
}

/** symbol -> value ('n' for `is not set`); later lines win. */
export function configMap(text: string): Map<string, string> {
  return new Map(parseDefconfig(text).map((s) => [s.symbol, s.value]));
}

export interface DroppedBrSymbol {
  symbol: string;
  requested: string;
  /** The .config value, 'n', or null when the symbol is not in .config at all (invisible). */
  final: string | null;
  line: number;
}

/**
 * Every requested symbol whose value did not survive. `n` requests are kept when
 * the symbol is unset or invisible; the others need the same value in the saved
 * defconfig or in .config.
 */
export function droppedSymbols(requested: BrSymbol[], saved: Map<string, string>, dotConfig: Map<string, string>): DroppedBrSymbol[] {
  const last = new Map<string, BrSymbol>();
  for (const r of requested) {
    last.delete(r.symbol);
    last.set(r.symbol, r);
  }
  const out: DroppedBrSymbol[] = [];
  for (const r of last.values()) {
    const final = dotConfig.get(r.symbol) ?? null;
    if (r.value === 'n') {
      if (final === null || final === 'n') continue;
    } else if (saved.get(r.symbol) === r.value || final === r.value) {
      continue;
    }
    out.push({ symbol: r.symbol, requested: r.value, final, line: r.line });
  }
  return out;
}

/** "requested y (buildroot-external/configs/x_defconfig:12), final not set" */
export function describeDrop(d: DroppedBrSymbol, file: string): string {
  const final = d.final === null ? 'absent (its dependencies are unmet)' : d.final === 'n' ? 'not set' : d.final;
  return `${d.symbol}: requested ${d.requested === 'n' ? 'not set' : d.requested} (${file}:${d.line}), final ${final}`;
}
