/**
 * The task timeline as an inline SVG Gantt chart. Each bar is one task
 * instance's recorded execution (started_at .. finished_at); bars on the
 * critical path carry the class "critical".
 *
 * The latest result of each instance may come from different runs (an
 * up-to-date task keeps the times of the run that built it), hours apart. A
 * linear axis would squeeze all the work into slivers, so idle stretches longer
 * than `gapMs` are cut out of the axis and drawn as a marked break that says
 * how long the idle time was.
 */
import { formatDuration } from '../lib/format.js';
import { escapeHtml, px } from './escape-html.js';

export interface Interval {
  start: number;
  end: number;
}

export interface AxisSegment extends Interval {
  /** Left edge in px (from the chart's origin). */
  x: number;
  width: number;
}

export interface TimeAxis {
  segments: AxisSegment[];
  /** One per cut-out idle stretch: where it is drawn and how long it was. */
  breaks: { x: number; gap_ms: number }[];
  width: number;
  /** Position of a time that lies within a segment. */
  x(t: number): number;
}

/**
 * Merge the intervals into busy segments (idle gaps of at most gapMs are kept),
 * then lay them out left to right: each segment is minPx wide plus its duration
 * at one common scale, and segments are separated by breakPx. The common scale
 * keeps bar lengths comparable; minPx keeps a short burst of work visible.
 */
export function timeAxis(intervals: readonly Interval[], o: { width: number; gapMs: number; breakPx: number; minPx?: number }): TimeAxis {
  const minPx = o.minPx ?? 0;
  const sorted = intervals.map((i) => ({ start: i.start, end: Math.max(i.start, i.end) })).sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: Interval[] = [];
  for (const i of sorted) {
    const last = merged.at(-1);
    if (last && i.start - last.end <= o.gapMs) last.end = Math.max(last.end, i.end);
    else merged.push({ ...i });
  }
  const total = merged.reduce((s, m) => s + (m.end - m.start), 0);
  const free = o.width - o.breakPx * Math.max(0, merged.length - 1) - minPx * merged.length;
  const scale = total > 0 ? Math.max(0, free) / total : 0;
  const segments: AxisSegment[] = [];
  const breaks: TimeAxis['breaks'] = [];
  let x = 0;
  for (const [n, m] of merged.entries()) {
    if (n > 0) {
      breaks.push({ x, gap_ms: m.start - merged[n - 1]!.end });
      x += o.breakPx;
    }
    const width = minPx + (m.end - m.start) * scale;
    segments.push({ ...m, x, width });
    x += width;
  }
  return {
    segments,
    breaks,
    width: o.width,
    x(t: number): number {
      const s = segments.find((g) => t >= g.start && t <= g.end) ?? segments.find((g) => t < g.start) ?? segments.at(-1);
      if (!s) return 0;
      return s.x + Math.min(Math.max(t - s.start, 0), s.end - s.start) * scale;
    },
  };
}

export interface GanttBar {
  id: string;
  phase: string;
  status: string;
  start: number;
  end: number;
  critical: boolean;
  /** Tooltip text (plain; escaped here). */
  title: string;
}

const LABEL_W = 170;
const ROW_H = 18;
const BAR_H = 12;
const TOP = 30;
const clock = (t: number) => new Date(t).toISOString().slice(11, 19);

/** The chart; `width` is the whole SVG's width. Bars are drawn in the order given. */
export function ganttSvg(bars: readonly GanttBar[], o: { width?: number; gapMs?: number } = {}): string {
  const width = o.width ?? 1100;
  const chartW = width - LABEL_W - 10;
  const axis = timeAxis(bars, { width: chartW, gapMs: o.gapMs ?? 60_000, breakPx: 14, minPx: 6 });
  const height = TOP + bars.length * ROW_H + 8;
  const out: string[] = [];
  out.push(
    `<svg class="gantt" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="task timeline: ${bars.length} task instances, critical path highlighted">`,
  );
  out.push(`<g class="axis" transform="translate(${LABEL_W},0)">`);
  // A clock label per segment start, skipped where it would overlap the previous one (~52 px wide).
  let freeFrom = -Infinity;
  for (const s of axis.segments) {
    out.push(`<line x1="${px(s.x)}" y1="${TOP - 6}" x2="${px(s.x)}" y2="${height}" class="tick"/>`);
    if (s.x < freeFrom) continue;
    out.push(`<text x="${px(s.x + 2)}" y="12" class="tick-label">${clock(s.start)}</text>`);
    freeFrom = s.x + 56;
  }
  const last = axis.segments.at(-1);
  if (last) out.push(`<text x="${px(last.x + last.width)}" y="24" class="tick-label end">${clock(last.end)}</text>`);
  let breakFree = -Infinity;
  for (const b of axis.breaks) {
    out.push(`<rect x="${px(b.x)}" y="${TOP - 6}" width="14" height="${height - TOP + 6}" class="axis-break"><title>${escapeHtml(`${formatDuration(b.gap_ms)} with no task running (cut from the axis)`)}</title></rect>`);
    if (b.x < breakFree) continue;
    out.push(`<text x="${px(b.x + 7)}" y="24" class="break-label">${escapeHtml(`+${formatDuration(b.gap_ms)}`)}</text>`);
    breakFree = b.x + 40;
  }
  out.push('</g>');
  for (const [n, b] of bars.entries()) {
    const y = TOP + n * ROW_H;
    const x0 = axis.x(b.start);
    const w = Math.max(2, axis.x(b.end) - x0);
    const cls = `bar status-${b.status.replace(/[^A-Za-z_-]/g, '')}${b.critical ? ' critical' : ''}`;
    out.push(`<g class="row${b.critical ? ' critical' : ''}" data-task="${escapeHtml(b.id)}">`);
    out.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 2}" class="row-label">${escapeHtml(`${b.phase} ${b.id}`)}</text>`);
    out.push(`<rect x="${px(LABEL_W + x0)}" y="${y}" width="${px(w)}" height="${BAR_H}" class="${cls}"><title>${escapeHtml(b.title)}</title></rect>`);
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n');
}
