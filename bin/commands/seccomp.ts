/**
 * `clawos-build seccomp profile [--whitelist FILE] [--json] -- CMD [ARG...]`:
 * run CMD under `strace -f` on this host and compare the syscalls it makes
 * with the compiled whitelist for the host's arch (C-08's seccomp-filter.json,
 * by default <build-dir>/security/<arch>/seccomp/seccomp-filter.json).
 * Exit 0 when every syscall CMD made is whitelisted, 1 when some are not.
 */
import { readFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { join, resolve } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { InfraError, UserError } from '../../lib/errors.js';
import { run as runProcess } from '../../lib/proc.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { compareProfile, formatProfile, isCompiledWhitelist, parseStraceTrace, type CompiledWhitelist } from '../../pipeline/security/seccomp-profile.js';

export interface SeccompCommandOptions {
  /** The word after `seccomp`: only `profile` exists. */
  subcommand: string | undefined;
  /** CMD and its arguments (what follows `--`). */
  command: string[];
  /** --whitelist FILE: a compiled seccomp-filter.json. */
  whitelist?: string;
  buildDir: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
}

/** Where C-08 leaves the compiled whitelist for an arch. */
export function defaultWhitelistPath(buildDir: string, arch: string): string {
  return join(resolve(buildDir), 'security', arch, 'seccomp', 'seccomp-filter.json');
}

async function loadCompiled(path: string, given: boolean): Promise<CompiledWhitelist> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UserError(
      `compiled whitelist not found: ${path}`,
      given ? 'pass a seccomp-filter.json written by the seccomp-compile step (C-08)' : 'run `clawos-build p2` (C-08 compiles it) or pass --whitelist FILE',
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path}: not JSON: ${(err as Error).message}`);
  }
  if (!isCompiledWhitelist(v)) throw new UserError(`${path}: not a compiled whitelist (seccomp-filter.json from C-08)`);
  return v;
}

export async function seccompCommand(o: SeccompCommandOptions): Promise<number> {
  if (o.subcommand !== 'profile') {
    throw new UserError(o.subcommand ? `unknown seccomp subcommand "${o.subcommand}"` : 'seccomp needs a subcommand', 'usage: clawos-build seccomp profile [--whitelist FILE] [--json] -- CMD [ARG...]');
  }
  if (!o.command.length) throw new UserError('seccomp profile needs a command after --', 'e.g. clawos-build seccomp profile -- cat /etc/hostname');
  const host = machine();
  const path = o.whitelist ? resolve(o.whitelist) : defaultWhitelistPath(o.buildDir, host);
  const w = await loadCompiled(path, !!o.whitelist);
  if (w.arch !== host) throw new UserError(`${path} is the ${w.arch} whitelist; this host is ${host}, and strace sees the host's syscall numbers`);

  const d = await tmpDir({ unsafeCleanup: true });
  try {
    const trace = join(d.path, 'trace');
    const echo = (_s: string, line: string) => {
      if (!o.json && _s !== 'meta') o.printErr(`  | ${line}\n`);
    };
    const r = await runProcess(['strace', '-f', '-qq', '-n', '-o', trace, '--', ...o.command], { sink: echo, tailLines: 20 });
    if (r.spawnError) throw new InfraError(`strace cannot run: ${r.spawnError}`, 'apt-get install strace');
    const text = await readFile(trace, 'utf8').catch(() => '');
    const used = parseStraceTrace(text);
    // strace exits with CMD's status; an empty trace means CMD never ran.
    if (!used.length) throw new InfraError(`strace traced nothing (exit ${r.exitCode ?? r.signal}): ${r.tail.join(' | ')}`, 'is ptrace allowed here (kernel.yama.ptrace_scope, container seccomp)?');
    const report = compareProfile(used, w);
    const ok = report.notWhitelisted.length === 0;
    if (o.json) {
      printJson(o, {
        ok,
            command: o.command,
            command_exit: r.exitCode,
            command_signal: r.signal,
            arch: w.arch,
            whitelist: path,
            spec: w.spec,
            default_action: w.default_action,
            used: report.used,
            not_whitelisted: report.notWhitelisted,
            whitelisted_unused: report.unused,
        aliases_applied: report.aliasesApplied,
      });
    } else {
      o.print(
        `seccomp profile of \`${o.command.join(' ')}\` (exit ${r.exitCode ?? r.signal}) on ${host} against ${path} (${w.spec.spec_id} ${w.spec.version}, default ${w.default_action})\n` +
          formatProfile(report, w).join('\n') +
          '\n',
      );
    }
    return ok ? EXIT.ok : EXIT.failed;
  } finally {
    await d.cleanup();
  }
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return seccompCommand({
    subcommand: a.positionals[0],
    command: a.rest,
    whitelist: a.whitelist as string | undefined,
    buildDir: a.buildDir as string,
    json: !!a.json,
    print: io.print,
    printErr: io.printErr,
  });
}
