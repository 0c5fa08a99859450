/**
 * The Prometheus text exposition format (version 0.0.4), as node_exporter's
 * textfile collector reads it: `# HELP` and `# TYPE` once per metric family,
 * before its samples; all samples of a family in one group; label values
 * escaped (\\, \", \n); a line feed after the last line; and, for the textfile
 * collector, no timestamps. formatPromText writes it; parsePromText checks a
 * text against those rules (tests, and a self-check before a file is written).
 */
export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  help: string;
  type: PromType;
  samples: PromSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function formatPromText(families: readonly PromFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${JSON.stringify(f.name)}`);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const names = Object.keys(s.labels);
      for (const n of names) if (!LABEL_NAME.test(n) || n.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(n)} in ${f.name}`);
      const labels = names.length ? `{${names.map((n) => `${n}="${escapeLabelValue(s.labels[n]!)}"`).join(',')}}` : '';
      out.push(`${f.name}${labels} ${formatValue(s.value)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

export interface ParsedProm {
  families: PromFamily[];
  errors: string[];
}

/** Parse `name{labels} value` (labels may be absent); returns an error string on bad syntax. */
function parseSample(line: string): { name: string; labels: Record<string, string>; value: number } | string {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!m) return 'a sample must start with a metric name';
  const name = m[1]!;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      if (line[i] === '}') {
        i++;
        break;
      }
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!ln) return `bad label name at column ${i + 1}`;
      const lname = ln[0];
      i += lname.length;
      if (line[i] !== '=' || line[i + 1] !== '"') return `label ${lname}: expected ="`;
      i += 2;
      let v = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return `label ${lname}: unterminated value`;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const e = line[i + 1];
          if (e === '\\') v += '\\';
          else if (e === '"') v += '"';
          else if (e === 'n') v += '\n';
          else return `label ${lname}: invalid escape \\${e ?? ''}`;
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      if (lname in labels) return `label ${lname} given twice`;
      labels[lname] = v;
      if (line[i] === ',') {
        i++;
        continue;
      }
      if (line[i] === '}') {
        i++;
        break;
      }
      return `expected , or } after label ${lname}`;
    }
  }
  if (line[i] !== ' ') return 'expected a space before the value';
  const rest = line.slice(i + 1).trim().split(/\s+/);
  if (rest.length > 1) return 'timestamps are not allowed in a textfile collector file';
  const raw = rest[0] ?? '';
  let value: number;
  if (raw === 'NaN') value = NaN;
  else if (raw === '+Inf' || raw === 'Inf') value = Infinity;
  else if (raw === '-Inf') value = -Infinity;
  else if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) value = Number(raw);
  else return `value ${JSON.stringify(raw)} is not a number`;
  return { name, labels, value };
}

const TYPES = new Set<PromType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePromText(text: string): ParsedProm {
  const errors: string[] = [];
  const families = new Map<string, PromFamily & { typed: boolean; helped: boolean }>();
  const closed = new Set<string>();
  let current: string | null = null;
  const series = new Set<string>();
  if (text.length && !text.endsWith('\n')) errors.push('the last line does not end with a line feed');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const family = (name: string, n: number) => {
    if (current !== name) {
      if (current !== null) closed.add(current);
      if (closed.has(name)) errors.push(`line ${n}: ${name}: its lines are not in one group`);
      current = name;
    }
    let f = families.get(name);
    if (!f) {
      f = { name, help: '', type: 'untyped', samples: [], typed: false, helped: false };
      families.set(name, f);
    }
    return f;
  };
  for (const [k, line] of lines.entries()) {
    const n = k + 1;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name!)) {
        errors.push(`line ${n}: invalid metric name ${JSON.stringify(name)}`);
        continue;
      }
      const f = family(name!, n);
      if (kind === 'HELP') {
        if (f.helped) errors.push(`line ${n}: second HELP for ${name}`);
        f.helped = true;
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) errors.push(`line ${n}: invalid escape in HELP of ${name}`);
        f.help = rest.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
      } else {
        if (f.typed) errors.push(`line ${n}: second TYPE for ${name}`);
        if (f.samples.length) errors.push(`line ${n}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest.trim() as PromType)) errors.push(`line ${n}: unknown type ${JSON.stringify(rest.trim())} for ${name}`);
        f.typed = true;
        f.type = rest.trim() as PromType;
      }
      continue;
    }
    const s = parseSample(line);
    if (typeof s === 'string') {
      errors.push(`line ${n}: ${s}`);
      continue;
    }
    const f = family(s.name, n);
    const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
    if (series.has(key)) errors.push(`line ${n}: duplicate series ${line.slice(0, line.lastIndexOf(' '))}`);
    series.add(key);
    f.samples.push({ labels: s.labels, value: s.value });
  }
  return { families: [...families.values()].map(({ typed: _t, helped: _h, ...f }) => f), errors };
}
