/**
 * A real icecream cluster on this one machine, for tests: Debian's
 * icecc-scheduler and three iceccd, each in a network namespace of its own,
 * joined by veth pairs to a bridge in the scheduler's namespace. Addresses
 * exist only inside the namespaces, so nothing on the host's network changes
 * and two clusters never meet.
 *
 *   <p>s  scheduler, bridge br0 10.<n>.<m>.1
 *   <p>a  daemon-a 10.<n>.<m>.2, 2 slots     compile servers
 *   <p>b  daemon-b 10.<n>.<m>.3, 2 slots
 *   <p>c  client-c 10.<n>.<m>.4, 0 slots     the client's local daemon: takes no job,
 *                                            so every compile goes to daemon-a or daemon-b
 *
 * Each daemon gets a private tmpfs on /run (a root iceccd always binds
 * /run/icecc/iceccd.socket) and, for daemon-a and daemon-b, a /proc/stat frozen
 * at start: icecc rates a daemon's load from the host's idle time and never
 * picks one at 1000 (this shared machine is often busy with other builds), while
 * real cluster machines are separate. The scheduler's log is the test's witness
 * of which daemon compiled what.
 */
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { onPath } from '../../pipeline/kernel/icecc.js';
import { run, type RunResult } from '../../lib/proc.js';

const TOOLS = ['ip', 'unshare', 'icecc', 'iceccd', 'icecc-scheduler', 'icecc-create-env'];

/** Why the cluster cannot be started here (the test skips with it), or null. */
export function iceccClusterUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, a tmpfs per daemon)';
  const missing = TOOLS.filter((t) => !onPath(t, `${process.env.PATH}:/usr/sbin:/sbin`));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install icecc iproute2)`;
  return null;
}

export interface IceccCluster {
  /** Compile servers by node name, with the address the client's log names them by. */
  daemons: { name: string; address: string }[];
  /** argv that runs a command as the cluster's client: in client-c's namespace, with a private /run (no host iceccd socket). */
  client(argv: string[]): string[];
  schedulerLog(): Promise<string>;
  stop(): Promise<void>;
}

interface Running {
  exited: Promise<RunResult>;
  abort: AbortController;
}

async function must(argv: string[]): Promise<void> {
  const r = await run(argv);
  if (!r.ok) throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.tail.join(' / ')}`);
}

export async function startIceccCluster(): Promise<IceccCluster> {
  const p = `ic${randomBytes(3).toString('hex')}`;
  const net = `10.${100 + (randomBytes(1)[0]! % 100)}.${randomBytes(1)[0]! % 250}`;
  const tmp: DirectoryResult = await dir({ unsafeCleanup: true });
  const root = tmp.path;
  const made: string[] = [];
  const procs: Running[] = [];
  const stop = async () => {
    for (const x of procs) x.abort.abort();
    await Promise.all(procs.map((x) => x.exited));
    // Deleting a namespace deletes its ends of the veth pairs, and with them the pairs and the bridge.
    for (const ns of made.reverse()) await run(['ip', 'netns', 'del', ns]);
    await tmp.cleanup();
  };
  try {
    const uid = Number((await run(['id', '-u', 'icecc'], { captureStdout: true })).stdout.trim());
    const gid = Number((await run(['id', '-g', 'icecc'], { captureStdout: true })).stdout.trim());
    // The scheduler and the daemons write as user icecc: the temp dir (0700) must let it through.
    await chmod(root, 0o755);
    const logs = join(root, 'logs');
    await mkdir(logs);
    await chmod(logs, 0o777);
    // A /proc/stat that never changes: icecc's load formula then reads the daemon as idle.
    const frozenStat = join(root, 'frozen-stat');
    await writeFile(frozenStat, await readFile('/proc/stat'));

    for (const n of ['s', 'a', 'b', 'c']) {
      await must(['ip', 'netns', 'add', `${p}${n}`]);
      made.push(`${p}${n}`);
      await must(['ip', '-n', `${p}${n}`, 'link', 'set', 'lo', 'up']);
    }
    await must(['ip', '-n', `${p}s`, 'link', 'add', 'br0', 'type', 'bridge']);
    await must(['ip', '-n', `${p}s`, 'addr', 'add', `${net}.1/24`, 'dev', 'br0']);
    await must(['ip', '-n', `${p}s`, 'link', 'set', 'br0', 'up']);
    const hosts = { a: 2, b: 3, c: 4 } as const;
    for (const [n, host] of Object.entries(hosts)) {
      // Created in the scheduler's namespace, one end moved out: nothing touches the host's namespace.
      await must(['ip', '-n', `${p}s`, 'link', 'add', `${p}${n}0`, 'type', 'veth', 'peer', 'name', `${p}${n}1`]);
      await must(['ip', '-n', `${p}s`, 'link', 'set', `${p}${n}1`, 'netns', `${p}${n}`]);
      await must(['ip', '-n', `${p}s`, 'link', 'set', `${p}${n}0`, 'master', 'br0', 'up']);
      await must(['ip', '-n', `${p}${n}`, 'addr', 'add', `${net}.${host}/24`, 'dev', `${p}${n}1`]);
      await must(['ip', '-n', `${p}${n}`, 'link', 'set', `${p}${n}1`, 'up']);
    }

    const start = (argv: string[]) => {
      const abort = new AbortController();
      procs.push({ abort, exited: run(argv, { signal: abort.signal, killGraceMs: 2000 }) });
    };
    start(['ip', 'netns', 'exec', `${p}s`, 'icecc-scheduler', '-n', p, '-l', join(logs, 'scheduler.log'), '-vvv']);
    const daemon = async (n: 'a' | 'b' | 'c', name: string, extra: string[], frozen: boolean) => {
      const envDir = join(root, `env-${n}`);
      await mkdir(envDir);
      await chown(envDir, uid, gid);
      const argv = ['iceccd', '-n', p, '-s', `${net}.1`, '-N', name, '-b', envDir, '-l', join(logs, `${name}.log`), '-vv', ...extra];
      const setup = `mount -t tmpfs -o mode=0755 tmpfs /run && mkdir /run/icecc${frozen ? ` && mount --bind ${frozenStat} /proc/stat` : ''} && exec "$@"`;
      start(['ip', 'netns', 'exec', `${p}${n}`, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', setup, 'sh', ...argv]);
    };
    await daemon('a', 'daemon-a', ['-m', '2'], true);
    await daemon('b', 'daemon-b', ['-m', '2'], true);
    await daemon('c', 'client-c', ['-m', '0'], false);

    // Ready when all three have logged in to the scheduler (daemons retry every few seconds).
    const schedulerLog = () => readFile(join(logs, 'scheduler.log'), 'utf8').catch(() => '');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const log = await schedulerLog();
      if (['daemon-a', 'daemon-b', 'client-c'].every((d) => log.includes(`login ${d} `))) break;
      if (Date.now() > deadline) throw new Error(`icecream cluster ${p}: not every daemon logged in within 60 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return {
      daemons: [
        { name: 'daemon-a', address: `${net}.2` },
        { name: 'daemon-b', address: `${net}.3` },
      ],
      client: (argv) => ['ip', 'netns', 'exec', `${p}c`, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /run && exec "$@"', 'sh', ...argv],
      schedulerLog,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
