/**
 * A real redis for the compiler cache's tests: Debian's redis-server on a loopback
 * port, nothing saved to disk (--save '' --appendonly no), its own temp dir, stopped
 * (killed with its process group) by stop().
 */
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { run } from '../../lib/proc.js';
import { pingRedis } from '../../lib/redis-ping.js';
import { freePort } from './nginx-cache.js';

export interface RedisServer {
  url: string;
  /** The same server on a unix socket: redis+unix:PATH (redis+unix://PASSWORD@localhost/PATH with a password). */
  unixUrl: string;
  port: number;
  stop(): Promise<void>;
}

/** `password`: requirepass, for the redaction tests. */
export async function startRedis(o: { password?: string } = {}): Promise<RedisServer> {
  const tmp = await dir({ unsafeCleanup: true });
  const port = await freePort();
  const ac = new AbortController();
  const argv = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp.path, '--logfile', join(tmp.path, 'redis.log'), '--unixsocket', join(tmp.path, 'redis.sock'), '--unixsocketperm', '700'];
  if (o.password) argv.push('--requirepass', o.password);
  const exited = run(argv, { signal: ac.signal, killGraceMs: 2000 });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const p = await pingRedis({ kind: 'tcp', host: '127.0.0.1', port, ...(o.password ? { password: o.password } : {}) }, 500);
    if (p.ok) break;
    if (Date.now() > deadline) {
      ac.abort();
      const r = await exited;
      throw new Error(`redis-server did not start on port ${port}: ${r.tail.join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://${o.password ? `${encodeURIComponent(o.password)}@` : ''}127.0.0.1:${port}`,
    unixUrl: o.password ? `redis+unix://${encodeURIComponent(o.password)}@localhost${join(tmp.path, 'redis.sock')}` : `redis+unix:${join(tmp.path, 'redis.sock')}`,
    port,
    stop: async () => {
      ac.abort();
      await exited;
      await tmp.cleanup();
    },
  };
}
