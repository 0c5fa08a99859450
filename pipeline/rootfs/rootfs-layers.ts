/**
 * The layers every ClawOS root filesystem carries, whichever backend assembles
 * it (the busybox rootfs step or Buildroot): the `extras` the build adds, the
 * P1.5 quota table as the guest reads it, and the manifest listing every entry.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../lib/hash.js';
import type { CpioEntry } from '../../lib/cpio.js';
import { formatDiagnostic, parseYaml } from '../../lib/yaml-source.js';
import { StepParamError } from '../catalog/step-params.js';


export interface Extra {
  from: string;
  to: string;
}

/** `extras: [{from, to}]` of the rootfs step (and the Buildroot backend, which takes the same list). */
export function extrasOf(params: Record<string, unknown>, step = 'rootfs'): Extra[] {
  const v = params['extras'];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new StepParamError(`${step}: parameter 'extras' must be a list of {from, to}`);
  return v.map((x, i) => {
    const e = x as Record<string, unknown>;
    const from = e?.['from'];
    const to = e?.['to'];
    if (typeof from !== 'string' || !from || typeof to !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9._/-]*$/.test(to) || to.split('/').includes('..')) {
      throw new StepParamError(`${step}: extras[${i}] needs 'from' (build-relative path) and 'to' (a relative path in the image without ..)`);
    }
    return { from, to: to.replace(/\/+$/, '') };
  });
}

/** Where the guest's checks.d/cgroup-quotas.sh reads the P1.5 table. */
export const QUOTA_ENV_PATH = 'etc/clawos/cgroup-quotas.env';

/** The P1.5 quota table (repo-relative YAML) as the guest's env file, or why not. */
export async function renderQuotaEnv(repoRoot: string, rel: string, step: string): Promise<{ data: Buffer } | { problem: string }> {
  const bytes = await readFile(join(repoRoot, rel)).catch(() => null);
  if (!bytes) return { problem: `${step}: cgroup_quotas ${rel} cannot be read in the repository` };
  const q = quotaRows(bytes.toString('utf8'), rel);
  if ('problems' in q) return { problem: `${step}: cgroup_quotas:\n${q.problems.join('\n')}` };
  return { data: Buffer.from(quotaEnv(q.rows, q.specId, rel, sha256Hex(bytes))) };
}

/** A slice name and its limits, as cgroupfs spells them. */
interface QuotaRow {
  slice: string;
  memoryMax: string;
  cpuMax: [string, string];
  pidsMax: string;
}

const INT_OR_MAX = /^(max|[1-9][0-9]*)$/;

/**
 * The P1.5 table as rows, or the problems (file:line:col). C-06 froze the
 * same file with its full schema; this re-checks only what the guest file
 * needs, so a hand-edited table cannot put shell syntax into the image.
 */
export function quotaRows(text: string, file: string): { rows: QuotaRow[]; specId: string } | { problems: string[] } {
  const src = parseYaml(text, file);
  if (src.errors.length) return { problems: src.errors.map(formatDiagnostic) };
  const doc = src.value as { spec_id?: unknown; version?: unknown; slices?: unknown };
  const slices = doc?.slices;
  if (!slices || typeof slices !== 'object' || Array.isArray(slices)) {
    return { problems: [formatDiagnostic({ ...src.locate([]), message: 'no slices: map' })] };
  }
  const problems: string[] = [];
  const rows: QuotaRow[] = [];
  for (const [slice, v] of Object.entries(slices as Record<string, Record<string, unknown>>)) {
    const bad = (key: string, want: string) => problems.push(formatDiagnostic({ ...src.locate(['slices', slice, key]), message: `slices.${slice}.${key}: ${want}` }));
    if (!/^[a-z0-9][a-z0-9.-]*\.slice$/.test(slice)) {
      problems.push(formatDiagnostic({ ...src.locate(['slices', slice], true), message: `slices: ${JSON.stringify(slice)} is not [a-z0-9.-] ending in .slice` }));
    }
    const mem = String(v?.['memory_max']);
    const cpu = String(v?.['cpu_max']).split(' ');
    const pids = String(v?.['pids_max']);
    if (!INT_OR_MAX.test(mem)) bad('memory_max', 'bytes or "max"');
    if (cpu.length !== 2 || !INT_OR_MAX.test(cpu[0]!) || !/^[1-9][0-9]*$/.test(cpu[1]!)) bad('cpu_max', '"QUOTA PERIOD" (QUOTA may be max)');
    if (!INT_OR_MAX.test(pids)) bad('pids_max', 'a count or "max"');
    rows.push({ slice, memoryMax: mem, cpuMax: [cpu[0] ?? '', cpu[1] ?? ''], pidsMax: pids });
  }
  if (!rows.length) problems.push(formatDiagnostic({ ...src.locate(['slices']), message: 'slices: no slice' }));
  if (problems.length) return { problems };
  rows.sort((a, b) => (a.slice < b.slice ? -1 : a.slice > b.slice ? 1 : 0));
  return { rows, specId: `${String(doc.spec_id)} ${String(doc.version)}` };
}

/** /etc/clawos/cgroup-quotas.env: sourced by the guest, one slice per line of CGROUP_SLICES. */
export function quotaEnv(rows: QuotaRow[], specId: string, file: string, sha256: string): string {
  return [
    `# Written by clawos-build (rootfs step) from ${file} (${specId}, sha256 ${sha256}).`,
    '# CGROUP_SLICES: one slice per line: name memory.max cpu.max-quota cpu.max-period pids.max',
    `CGROUP_QUOTAS_SPEC=${shq(`${specId} ${file} sha256:${sha256}`)}`,
    `CGROUP_SLICES='`,
    ...rows.map((r) => `${r.slice} ${r.memoryMax} ${r.cpuMax[0]} ${r.cpuMax[1]} ${r.pidsMax}`),
    `'`,
  ].join('\n') + '\n';
}

/** Single-quoted for /bin/sh. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const TYPE_BITS = { dir: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000 } as const;

/** "mode uid gid size sha256 path" per entry, sorted by path. */
export function manifest(entries: CpioEntry[]): string {
  return (
    [...entries]
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map((e) => {
        const mode = (TYPE_BITS[e.type] | (e.type === 'symlink' ? 0o777 : e.mode)).toString(8).padStart(6, '0');
        switch (e.type) {
          case 'dir':
            return `${mode} 0 0 0 - /${e.path}`;
          case 'file':
            return `${mode} 0 0 ${e.data.length} ${sha256Hex(e.data)} /${e.path}`;
          case 'symlink':
            return `${mode} 0 0 ${Buffer.byteLength(e.target)} ${sha256Hex(e.target)} /${e.path} -> ${e.target}`;
          default:
            return `${mode} 0 0 0 ${e.type}:${e.major},${e.minor} /${e.path}`;
        }
      })
      .join('\n') + '\n'
  );
}

