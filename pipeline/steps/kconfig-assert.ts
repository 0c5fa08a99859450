/**
 * kconfig-assert: confirm options in a built kernel's final .config (catalog
 * tasks ), and optionally that its vmlinux carries BTF.
 *
 *   uses: kconfig-assert
 *   with:
 *     config: kernel-engineer/{arch}/config
 *     symbols: { RANDOMIZE_BASE: y, LSM: '"lockdown,yama,apparmor,bpf"', SLOB: n }
 *     btf_vmlinux_from: kernel-engineer/{arch}/obj/vmlinux   # optional
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import type { ArchSpec } from '../arch.js';
import { parseConfig } from '../kernel/kconfig.js';
import { fail, infra, pass, type Outcome } from '../outcome.js';
import type { Step, StepContext } from '../step.js';

export interface KconfigAssertParams {
  config: string;
  /** SYMBOL (with or without CONFIG_) -> expected value; 'n' or 'not set' for unset. */
  symbols: Record<string, string>;
  btf_vmlinux_from?: string;
}

/** Validate the `with:` block; returns an error text or the params. */
export function parseKconfigAssertParams(p: Record<string, unknown>): KconfigAssertParams | string {
  for (const k of Object.keys(p)) {
    if (!['config', 'symbols', 'btf_vmlinux_from'].includes(k)) return `kconfig-assert: unknown parameter '${k}'`;
  }
  if (typeof p['config'] !== 'string' || p['config'] === '') return "kconfig-assert: 'config' must be a build-relative path";
  const syms = p['symbols'];
  if (!syms || typeof syms !== 'object' || Array.isArray(syms) || Object.keys(syms).length === 0) {
    return "kconfig-assert: 'symbols' must map SYMBOL to its expected value";
  }
  const symbols: Record<string, string> = {};
  for (const [k, v] of Object.entries(syms as Record<string, unknown>)) {
    if (!/^(CONFIG_)?[A-Za-z0-9_]+$/.test(k)) return `kconfig-assert: '${k}' is not a Kconfig symbol`;
    // YAML turns `y`/`n` into strings but 100 into a number and a bare `yes` stays a string.
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      return `kconfig-assert: value of ${k} must be a string`;
    }
    symbols[k.replace(/^CONFIG_/, '')] = typeof v === 'boolean' ? (v ? 'y' : 'n') : String(v);
  }
  const btf = p['btf_vmlinux_from'];
  if (btf !== undefined && (typeof btf !== 'string' || btf === '')) return "kconfig-assert: 'btf_vmlinux_from' must be a path";
  return { config: p['config'] as string, symbols, btf_vmlinux_from: btf as string | undefined };
}

const isUnset = (v: string | undefined) => v === undefined || v === 'n' || v === 'not set';

export const kconfigAssertStep: Step = {
  name: 'kconfig-assert',
  version: 1,
  toolPackages(_arch: ArchSpec | null, params: Record<string, unknown>): string[] {
    return params['btf_vmlinux_from'] ? ['binutils'] : [];
  },
  async run(ctx: StepContext): Promise<Outcome> {
    const params = parseKconfigAssertParams(ctx.params);
    if (typeof params === 'string') return fail('spec-invalid', params);
    const configPath = ctx.buildPath(params.config);
    const shown = relative(ctx.buildDir, configPath);
    if (!existsSync(configPath)) return fail('output-missing', `kconfig-assert: ${shown} does not exist (was the kernel built?)`);
    const config = parseConfig(await readFile(configPath, 'utf8'));

    const confirmed: string[] = [];
    const mismatches: { symbol: string; expected: string; actual: string }[] = [];
    for (const [sym, expected] of Object.entries(params.symbols)) {
      const actual = config.get(sym);
      const ok = isUnset(expected) ? isUnset(actual) : actual === expected;
      const exp = isUnset(expected) ? 'not set' : expected;
      const act = isUnset(actual) ? 'not set' : actual!;
      if (ok) confirmed.push(`CONFIG_${sym}=${exp}`);
      else mismatches.push({ symbol: `CONFIG_${sym}`, expected: exp, actual: act });
    }
    const lines = mismatches.map((m) => `${m.symbol}: expected ${m.expected}, actual ${m.actual} (${shown})`);

    let btf: string | undefined;
    if (params.btf_vmlinux_from) {
      const vmlinux = ctx.buildPath(params.btf_vmlinux_from);
      const prefix = ctx.arch?.kernel.cross_compile ?? '';
      if (!existsSync(vmlinux)) {
        lines.push(`${relative(ctx.buildDir, vmlinux)}: no such file (BTF check)`);
      } else {
        const r = await ctx.run([`${prefix}readelf`, '-S', '--wide', vmlinux], { captureStdout: true, signal: ctx.signal });
        if (r.spawnError) return infra(`kconfig-assert: ${r.spawnError}`);
        if (!r.ok) lines.push(`readelf -S ${relative(ctx.buildDir, vmlinux)} failed (exit ${r.exitCode})`);
        else if (!/\s\.BTF\s/.test(r.stdout)) lines.push(`${relative(ctx.buildDir, vmlinux)}: no .BTF section`);
        else btf = `.BTF in ${relative(ctx.buildDir, vmlinux)}`;
      }
    }
    const data = { confirmed, mismatches, btf: btf ?? null };
    const evidence = [{ label: 'final .config', path: shown, sha256: await sha256File(configPath) }];
    if (lines.length > 0) {
      return fail('config-dropped', `${lines.length} kernel option check${lines.length === 1 ? '' : 's'} failed:\n${lines.join('\n')}`, {
        data,
        evidence,
      });
    }
    return pass(`confirmed in ${shown}: ${[...confirmed, ...(btf ? [btf] : [])].join(', ')}`, { data, evidence });
  },
};
