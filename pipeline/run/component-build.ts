/**
 * Build an external component (IronClaw, the Aya programs …) from its
 * configured source: a directory, or a tarball/URL pinned by sha256. Not
 * configured = NOT_CONFIGURED, with what to configure; never a silent skip.
 *
 * Building is not proving: a built component is BUILT, never PASS. Only the
 * task's validation_cmd can make it PASS (pipeline/run/instance.ts).
 *
 * Every command runs through ctx.run, so inside the task's sandbox; that
 * includes the download, which needs the task to declare `network: true`
 * (RULE-006), like any other command that reaches for the network.
 */
import { cp, mkdir, rm, rename, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import type { ComponentConfig } from '../catalog/config.js';
import { built, fail, infra, type Outcome } from '../catalog/outcome.js';
import type { StepContext } from '../catalog/step.js';

/** What the task declares that the build must obey. */
export interface ComponentTask {
  /** The task's `network: true`. */
  network: boolean;
  /** Where the task is declared (tasks/B-02.yaml), named in diagnostics. */
  specFile: string;
}

/**
 * Fetches argv[1] into argv[2], run by node inside the sandbox. The error names
 * the cause's code (ENETUNREACH, EAI_AGAIN …), which the sandbox diagnosis reads.
 */
const DOWNLOAD_JS = `
const [url, out] = process.argv.slice(1);
fetch(url).then(async (res) => {
  if (!res.ok) { console.error('download: ' + url + ' answered HTTP ' + res.status); process.exit(1); }
  require('node:fs').writeFileSync(out, Buffer.from(await res.arrayBuffer()));
}, (err) => {
  const c = err.cause;
  console.error('download: cannot download ' + url + ': ' + err.message + (c ? ': ' + (c.code || '') + ' ' + (c.message || '') : ''));
  process.exit(1);
});
`;

export function notConfigured(name: string, needs: string, configFile: string | null): Outcome {
  return {
    status: 'NOT_CONFIGURED',
    reason: 'not-configured',
    message: `component ${name} is not configured (${needs}): set components.${name}.source, .build and .outputs in ${configFile ?? 'clawos-build.config.yaml'}`,
  };
}

/**
 * The pinned tarball of a URL source, in the task's own directory (the one place
 * its sandbox may write): kept there, so an unchanged pin is downloaded once.
 */
async function download(ctx: StepContext, name: string, source: { url: string; sha256: string }, task: ComponentTask): Promise<{ tarball: string } | { outcome: Outcome }> {
  const dir = join(ctx.outDir, 'downloads');
  const tarball = join(dir, `${name}-${source.sha256.slice(0, 16)}.tar`);
  if ((await sha256File(tarball).catch(() => null)) === source.sha256) return { tarball };
  if (!task.network) {
    return {
      outcome: fail(
        'rule-006-network-undeclared',
        `RULE-006: component ${name}: source ${source.url} must be downloaded, but network: true is not declared in ${task.specFile}, so its sandbox has none: declare it there, or set components.${name}.source to a local path or a file:// tarball`,
      ),
    };
  }
  ctx.progress(`downloading ${source.url}`);
  await mkdir(dir, { recursive: true });
  const part = `${tarball}.part`;
  const r = await ctx.run([process.execPath, '-e', DOWNLOAD_JS, source.url, part], { cwd: ctx.outDir, signal: ctx.signal });
  if (!r.ok) {
    await rm(part, { force: true });
    return { outcome: infra(`component ${name}: cannot download ${source.url}: ${r.tail.slice(-2).join(' | ') || `exit ${r.exitCode ?? r.signal}`}`) };
  }
  await rename(part, tarball);
  return { tarball };
}

export async function buildComponent(ctx: StepContext, name: string, cfg: ComponentConfig, task: ComponentTask): Promise<Outcome> {
  const srcDir = join(ctx.outDir, 'src');
  await rm(srcDir, { recursive: true, force: true });
  await mkdir(ctx.outDir, { recursive: true });
  let tarball: string | null = null;
  if ('url' in cfg.source) {
    if (!cfg.source.url.startsWith('file://')) {
      const d = await download(ctx, name, cfg.source, task);
      if ('outcome' in d) return d.outcome;
      tarball = d.tarball;
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
  // Not PASS: instance.ts makes it PASS only when the task's validation_cmd passes.
  return built(`component ${name} built: ${cfg.outputs.join(', ')}`, { evidence });
}

/** The files a configured component puts into the task's directory (build-relative). */
export function componentOutputs(outDirRel: string, cfg: ComponentConfig): string[] {
  return cfg.outputs.map((o) => `${outDirRel}/${basename(o)}`);
}
