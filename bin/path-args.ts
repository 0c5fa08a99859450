/**
 * The paths a command line names, checked before a command reads or writes
 * anything: a wrong path is the user's input (UserError, exit 3, one line naming
 * it), never a Node stack. One place, so every command says it the same way.
 */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InfraError, UserError } from '../lib/errors.js';

async function statOrNull(path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * --build-dir, resolved: it may not exist yet (nothing recorded), but a path
 * that exists and is not a directory is refused rather than read as an empty build.
 */
export async function buildDirArg(raw: string): Promise<string> {
  const dir = resolve(raw);
  const st = await statOrNull(dir);
  if (st && !st.isDirectory()) throw new UserError(`--build-dir ${raw} is not a directory`);
  return dir;
}

/**
 * A file a command is about to write (`flag` names where it came from, e.g.
 * `--out x.tar`), resolved: its folder must already exist (nothing is created at
 * a mistyped path) and it must not itself be a directory.
 */
export async function outputFileArg(raw: string, flag: string): Promise<string> {
  const file = resolve(raw);
  const parent = dirname(file);
  const dir = await statOrNull(parent);
  if (!dir) throw new UserError(`${flag} ${raw}: folder ${parent} does not exist`);
  if (!dir.isDirectory()) throw new UserError(`${flag} ${raw}: ${parent} is not a folder`);
  if ((await statOrNull(file))?.isDirectory()) throw new UserError(`${flag} ${raw} is a directory; give a file name`);
  return file;
}

const WRONG_PATH = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST']);
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Run `write`, which writes `file` (and perhaps a temp file beside it): a
 * system error on a path in that folder is the user's path that cannot be
 * written (exit 3), or a full disk (exit 4), said in one line; anything else is
 * rethrown as it is.
 */
export async function writingTo<T>(file: string, flag: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const code = err.code ?? '';
    const inFolder = typeof err.path === 'string' && dirname(resolve(err.path)) === dirname(file);
    if (!inFolder || !(WRONG_PATH.has(code) || NO_SPACE.has(code))) throw e;
    // "ENOENT: no such file or directory, open '…'" -> "no such file or directory"
    const what = /^[A-Z]+: ([^,]+)/.exec(err.message)?.[1] ?? err.message;
    const line = `cannot write ${flag} ${file}: ${what} (${code})`;
    if (NO_SPACE.has(code)) throw new InfraError(line);
    throw new UserError(line);
  }
}
