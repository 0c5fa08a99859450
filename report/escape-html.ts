/**
 * Escaping for the HTML report and its inline SVG. Every string that comes from
 * a record (task messages, check values, paths) goes through escapeHtml: a task
 * message may well contain `<`, `&` or quotes.
 */
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  // Control characters (serial logs carry some) are not allowed in HTML text; show them as U+FFFD.
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]!).replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '\uFFFD');
}

/** A coordinate for SVG: at most one decimal, no "-0". */
export function px(n: number): string {
  const r = Math.round(n * 10) / 10;
  return String(r === 0 ? 0 : r);
}
