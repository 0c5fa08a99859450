/**
 * Build an external component (IronClaw, the Aya programs …) from its
 * configured source: a directory, or a tarball/URL pinned by sha256. Not
 * configured = NOT_CONFIGURED, with what to configure; never a silent skip.
 */
import { cp, mkdir, rm, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import type { ComponentConfig } from '../catalog/config.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { StepContext } from '../catalog/step.js';

export function notConfigured(name: string, needs: string, configFile: string | null): Outcome {
  return {
    status: 'NOT_CONFIGURED',
    reason: 'not-configured',
    message: `component ${name} is not configured (${needs}): set components.${name}.source, .build and .outputs in ${configFile ?? 'clawos-build.config.yaml'}`,
  };
}

export async function buildComponent(ctx: StepContext, name: string, cfg: ComponentConfig): Promise<Outcome> {
  const srcDir = join(ctx.outDir, 'src');
  await rm(srcDir, { recursive: true, force: true });
  await mkdir(ctx.outDir, { recursive: true });
  let tarball: string | null = null;
  if ('url' in cfg.source) {
    if (!cfg.source.url.startsWith('file://')) {
      tarball = join(ctx.cacheDir, 'components', `${name}-${cfg.source.sha256.slice(0, 16)}.tar`);
      try {
        await stat(tarball);
      } catch {
        ctx.progress(`downloading ${cfg.source.url}`);
        let res: Response;
        try {
          res = await fetch(cfg.source.url, { signal: ctx.signal });
        } catch (err) {
          return infra(`component ${name}: cannot download ${cfg.source.url}: ${(err as Error).message}`);
        }
        if (!res.ok) return infra(`component ${name}: ${cfg.source.url} answered HTTP ${res.status}`);
        await mkdir(join(ctx.cacheDir, 'components'), { recursive: true });
        await writeFile(tarball + '.part', Buffer.from(await res.arrayBuffer()));
        await rename(tarball + '.part', tarball);
      }
    } else {
      tarball = new URL(cfg.source.url).pathname;
    }
  } else {
    const st = await stat(cfg.source.path).catch(() => null);
    if (!st) return fail('exit-non-zero', `component ${name}: source ${cfg.source.path} does not exist`);
    if (st.isFile()) tarball = cfg.source.path;
    else await cp(cfg.source.path, srcDir, { recursive: true });
  }
  if (tarball) {
    const want = 'sha256' in cfg.source ? cfg.source.sha256 : undefined;
    if (!want) return fail('source-mismatch', `component ${name}: tarball ${tarball} has no pinned sha256: add source.sha256`);
    const got = await sha256File(tarball);
    if (got !== want) {
      return fail('source-mismatch', `component ${name}: ${tarball} has sha256 ${got}, but ${want} is pinned: refusing to build it`);
    }
    await mkdir(srcDir, { recursive: true });
    const r = await ctx.run(['tar', '-xf', tarball, '-C', srcDir], { signal: ctx.signal });
    if (!r.ok) return fail('exit-non-zero', `component ${name}: cannot unpack ${tarball}: ${r.tail.slice(-3).join(' | ')}`);
  }
  ctx.progress(`building component ${name}`);
  const r = await ctx.run(['bash', '-c', cfg.build], { cwd: srcDir, signal: ctx.signal });
  if (!r.ok) {
    return fail('exit-non-zero', `component ${name}: build command failed (exit ${r.exitCode ?? r.signal}): ${r.tail.slice(-5).join(' | ')}`);
  }
  const evidence = [];
  for (const o of cfg.outputs) {
    const from = join(srcDir, o);
    const to = join(ctx.outDir, basename(o));
    const st = await stat(from).catch(() => null);
    if (!st) return fail('output-missing', `component ${name}: the build did not produce ${o}`);
    await cp(from, to, { recursive: true });
    evidence.push({ label: o, path: to.slice(ctx.buildDir.length + 1), sha256: st.isFile() ? await sha256File(to) : '' });
  }
  return pass(`component ${name} built: ${cfg.outputs.join(', ')}`, { evidence });
}

/** The files a configured component puts into the task's directory (build-relative). */
export function componentOutputs(outDirRel: string, cfg: ComponentConfig): string[] {
  return cfg.outputs.map((o) => `${outDirRel}/${basename(o)}`);
}
