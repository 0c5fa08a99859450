/**
 * kconfig-assert: confirm options in a built kernel's final .config (catalog
 * tasks ), and optionally that its vmlinux carries BTF.
 *
 *   uses: kconfig-assert
 *   with:
 *     config: kernel-engineer/{arch}/config
 *     symbols: { RANDOMIZE_BASE: y, LSM: '"lockdown,yama,apparmor,bpf"', SLOB: n }
 *     btf_vmlinux_from: kernel-engineer/{arch}/obj/vmlinux   # optional
 *     report: A-02-kconfig.json     # optional, written into the task's output dir
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import type { ArchSpec } from '../catalog/arch.js';
import { parseConfig } from '../kernel/kconfig.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';

export interface KconfigAssertParams {
  config: string;
  /** SYMBOL (with or without CONFIG_) -> expected value; 'n' or 'not set' for unset. */
  symbols: Record<string, string>;
  btf_vmlinux_from?: string;
  /** File name (relative to ctx.outDir) of a JSON report, written on PASS and FAIL. */
  report?: string;
}

/** Validate the `with:` block; returns an error text or the params. */
export function parseKconfigAssertParams(p: Record<string, unknown>): KconfigAssertParams | string {
  for (const k of Object.keys(p)) {
    if (!['config', 'symbols', 'btf_vmlinux_from', 'report'].includes(k)) return `kconfig-assert: unknown parameter '${k}'`;
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
  const report = p['report'];
  if (report !== undefined && (typeof report !== 'string' || !/^[A-Za-z0-9._-]+$/.test(report) || report.startsWith('.'))) {
    return "kconfig-assert: 'report' must be a plain file name";
  }
  return { config: p['config'] as string, symbols, btf_vmlinux_from: btf as string | undefined, report: report as string | undefined };
}

const isUnset = (v: string | undefined) => v === undefined || v === 'n' || v === 'not set';

export const kconfigAssertStep: Step = {
  name: 'kconfig-assert',
  version: 1,
  params: paramsSchema(
    { config: P.path, symbols: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } }, btf_vmlinux_from: P.path, report: P.path },
    ['config', 'symbols'],
  ),
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
    if (params.report) {
      const reportPath = join(ctx.outDir, params.report);
      await writeJsonAtomic(reportPath, { config: shown, ok: lines.length === 0, problems: lines, ...data });
      evidence.push({ label: 'kconfig-assert report', path: relative(ctx.buildDir, reportPath), sha256: await sha256File(reportPath) });
    }
    if (lines.length > 0) {
      return fail('config-dropped', `${lines.length} kernel option check${lines.length === 1 ? '' : 's'} failed:\n${lines.join('\n')}`, {
        data,
        evidence,
      });
    }
    return pass(`confirmed in ${shown}: ${[...confirmed, ...(btf ? [btf] : [])].join(', ')}`, { data, evidence });
  },
};
