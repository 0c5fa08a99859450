/**
 * Why a task instance's fingerprint changed: the differing parts, in words
 * ("input kernel-config changed", "tool gcc 12.2.0-14 -> 12.2.0-15", "task spec
 * changed (timeout_minutes)", "outputs of A-01@x86_64 changed (…/vmlinuz)").
 */
import { stableJson } from './fingerprint.js';

type Parts = Record<string, unknown>;

function diffMap(label: string, a: unknown, b: unknown): string[] {
  const x = (a ?? {}) as Record<string, unknown>;
  const y = (b ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
    if (!(k in x)) out.push(`${label} ${k} added`);
    else if (!(k in y)) out.push(`${label} ${k} removed`);
    else if (stableJson(x[k]) !== stableJson(y[k])) {
      const show = typeof x[k] === 'string' && typeof y[k] === 'string' && (x[k] as string).length < 40 ? ` (${x[k]} -> ${y[k]})` : ' changed';
      out.push(`${label} ${k}${show}`);
    }
  }
  return out;
}

/** Top-level keys whose values differ (added and removed included), sorted. */
function changedKeys(a: unknown, b: unknown): string[] {
  const x = (a ?? {}) as Record<string, unknown>;
  const y = (b ?? {}) as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => stableJson(x[k]) !== stableJson(y[k])).sort();
}

function describeStep(s: unknown): string {
  const v = s as { name?: string; version?: number } | null | undefined;
  return v?.name ? `${v.name} v${v.version}` : 'none';
}

export function describeChange(before: Parts | undefined, after: Parts): string[] {
  if (!before || !Object.keys(before).length) return ['no earlier result'];
  const out: string[] = [];
  if (stableJson(before.spec) !== stableJson(after.spec)) out.push(`task spec changed (${changedKeys(before.spec, after.spec).join(', ')})`);
  if (stableJson(before.arch) !== stableJson(after.arch)) out.push('architecture definition changed');
  if (stableJson(before.step) !== stableJson(after.step)) out.push(`step implementation changed (${describeStep(before.step)} -> ${describeStep(after.step)})`);
  out.push(...diffMap('input', before.inputs, after.inputs));
  out.push(...diffMap('frozen spec', before.frozen_specs, after.frozen_specs));
  out.push(...diffMap('tool', before.tools, after.tools));
  out.push(...diffMap('locked package', (before.locked ?? {}) as Record<string, string>, (after.locked ?? {}) as Record<string, string>));
  if ((before.module_signing_cert ?? null) !== (after.module_signing_cert ?? null)) {
    const name = (c: unknown) => (typeof c === 'string' ? `certificate ${c.slice(0, 16)}` : 'a key made per build');
    out.push(`module-signing key changed (${name(before.module_signing_cert)} -> ${name(after.module_signing_cert)})`);
  }
  if ((before.secureboot_cert ?? null) !== (after.secureboot_cert ?? null)) {
    const name = (c: unknown) => (typeof c === 'string' ? `certificate ${c.slice(0, 16)}` : 'none');
    out.push(`Secure Boot key changed (${name(before.secureboot_cert)} -> ${name(after.secureboot_cert)})`);
  }
  if ((before.compiled_by ?? null) !== (after.compiled_by ?? null)) {
    const how = (c: unknown) => (c === 'icecream' ? 'through the icecream cluster (--icecream)' : c === 'ccache' ? 'through the compiler cache (ccache)' : 'locally without a compiler cache');
    out.push(`compiled ${how(after.compiled_by)} now, ${how(before.compiled_by)} before`);
  }
  const depsA = (before.deps ?? {}) as Record<string, unknown>;
  const depsB = (after.deps ?? {}) as Record<string, unknown>;
  for (const d of [...new Set([...Object.keys(depsA), ...Object.keys(depsB)])].sort()) {
    if (stableJson(depsA[d]) === stableJson(depsB[d])) continue;
    const a = depsA[d] as { status?: string; outputs?: Record<string, string> } | undefined;
    const b = depsB[d] as { status?: string; outputs?: Record<string, string> } | undefined;
    if (!a || !b) out.push(`dependency ${d} ${a ? 'removed' : 'added'}`);
    else if (a.status !== b.status) out.push(`dependency ${d} is now ${b.status} (was ${a.status})`);
    else {
      const files = changedKeys(a.outputs, b.outputs);
      out.push(`outputs of ${d} changed (${files.slice(0, 3).join(', ')}${files.length > 3 ? ` +${files.length - 3} more` : ''})`);
    }
  }
  if (stableJson(before.component) !== stableJson(after.component)) out.push('component configuration changed');
  if (stableJson(before.source_date_epoch) !== stableJson(after.source_date_epoch)) out.push('SOURCE_DATE_EPOCH changed');
  if ((before.sandbox ?? 'bwrap') !== (after.sandbox ?? 'bwrap')) out.push(`sandbox mode changed (${String(before.sandbox ?? 'bwrap')} -> ${String(after.sandbox ?? 'bwrap')})`);
  return out.length ? out : ['clawos-build version changed'];
}
