/**
 * Boot stage timings as an inline SVG chart: one stacked bar per arch and
 * firmware variant. A boot record's stage_ms gives, per stage, the time from
 * QEMU's start to the first console line of that stage; each segment therefore
 * runs from the previous stage reached to this one. A boot that did not PASS
 * gets a last, hatched segment up to when it ended ("not reached").
 */
import { STAGES, type ReachedStage } from '../qemu/classify-boot.js';
import { escapeHtml, px } from './escape-html.js';

export const BOOT_STAGES = STAGES.filter((s): s is ReachedStage => s !== 'none');

export interface BootRow {
  arch: string;
  variant: string;
  verdict: string;
  stage_ms: Partial<Record<ReachedStage, number | null>>;
  duration_ms: number;
  /** The task instance whose record this is. */
  task: string;
}

export interface BootSegment {
  /** The stage reached at the segment's end, or "unreached" for the tail of a boot that did not PASS. */
  stage: ReachedStage | 'unreached';
  from_ms: number;
  to_ms: number;
}

export function bootSegments(r: BootRow): BootSegment[] {
  const out: BootSegment[] = [];
  let at = 0;
  for (const s of BOOT_STAGES) {
    const ms = r.stage_ms[s];
    if (typeof ms !== 'number') continue;
    const to = Math.max(at, ms);
    out.push({ stage: s, from_ms: at, to_ms: to });
    at = to;
  }
  if (r.verdict !== 'PASS' && r.duration_ms > at) out.push({ stage: 'unreached', from_ms: at, to_ms: r.duration_ms });
  return out;
}

const LABEL_W = 190;
const ROW_H = 26;
const BAR_H = 16;
const TOP = 26;

/** A tick step (s) giving at most ~10 ticks. */
export function tickStep(maxMs: number): number {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (maxMs / 1000 / s <= 10) return s;
  return Math.ceil(maxMs / 10_000);
}

export function bootChartSvg(rows: readonly BootRow[], o: { width?: number } = {}): string {
  const width = o.width ?? 1100;
  const chartW = width - LABEL_W - 60;
  const segs = rows.map(bootSegments);
  const maxMs = Math.max(1000, ...segs.map((s) => s.at(-1)?.to_ms ?? 0));
  const scale = chartW / maxMs;
  const legendY = TOP + rows.length * ROW_H + 10;
  const height = legendY + 24;
  const out: string[] = [];
  out.push(`<svg class="boot-chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="boot stage timings for ${rows.length} boot(s)">`);
  const step = tickStep(maxMs);
  out.push(`<g class="axis" transform="translate(${LABEL_W},0)">`);
  for (let t = 0; t * 1000 <= maxMs; t += step) {
    out.push(`<line x1="${px(t * 1000 * scale)}" y1="${TOP - 6}" x2="${px(t * 1000 * scale)}" y2="${legendY - 6}" class="tick"/>`);
    out.push(`<text x="${px(t * 1000 * scale)}" y="14" class="tick-label">${t} s</text>`);
  }
  out.push('</g>');
  for (const [n, r] of rows.entries()) {
    const y = TOP + n * ROW_H;
    out.push(`<g class="boot-row verdict-${r.verdict.replace(/[^A-Za-z_]/g, '')}" data-arch="${escapeHtml(r.arch)}" data-variant="${escapeHtml(r.variant)}">`);
    out.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 3}" class="row-label">${escapeHtml(`${r.arch} ${r.variant}`)} <tspan class="verdict">${escapeHtml(r.verdict)}</tspan></text>`);
    for (const s of segs[n]!) {
      const label = s.stage === 'unreached' ? `no further stage; the boot ended at ${(s.to_ms / 1000).toFixed(1)} s` : `${s.stage} reached at ${(s.to_ms / 1000).toFixed(1)} s (+${((s.to_ms - s.from_ms) / 1000).toFixed(1)} s)`;
      out.push(
        `<rect x="${px(LABEL_W + s.from_ms * scale)}" y="${y}" width="${px(Math.max(1, (s.to_ms - s.from_ms) * scale))}" height="${BAR_H}" class="stage stage-${s.stage}"><title>${escapeHtml(`${r.arch} ${r.variant}: ${label}`)}</title></rect>`,
      );
    }
    const end = segs[n]!.at(-1);
    if (end) out.push(`<text x="${px(LABEL_W + end.to_ms * scale + 4)}" y="${y + BAR_H - 3}" class="end-label">${(end.to_ms / 1000).toFixed(1)} s</text>`);
    out.push('</g>');
  }
  let lx = LABEL_W;
  out.push('<g class="legend">');
  for (const s of [...BOOT_STAGES, 'unreached' as const]) {
    out.push(`<rect x="${lx}" y="${legendY}" width="12" height="12" class="stage stage-${s}"/><text x="${lx + 16}" y="${legendY + 10}">${s === 'unreached' ? 'not reached' : `to ${s}`}</text>`);
    lx += 110;
  }
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n');
}
