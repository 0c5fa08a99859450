/**
 * Is a redis server answering? One PING (after AUTH when the URL holds a password)
 * over TCP or a unix socket, with a bounded timeout: the compiler cache asks once
 * per run, so a server that is down costs one warning, not a timeout per compile.
 */
import { connect } from 'node:net';

export type RedisTarget = { kind: 'tcp'; host: string; port: number; user?: string; password?: string } | { kind: 'unix'; path: string; user?: string; password?: string };

/** redis://[[USER:]PASSWORD@]HOST[:PORT][/DB] or redis+unix:PATH / redis+unix://[[USER:]PASSWORD@]localhost/PATH, as ccache reads them; null when it is neither. */
export function parseRedisUrl(url: string): RedisTarget | null {
  const unixShort = /^redis\+unix:(\/[^?]*)(?:\?.*)?$/.exec(url);
  if (unixShort && !url.startsWith('redis+unix://')) return { kind: 'unix', path: unixShort[1]! };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  const auth = {
    ...(u.username && u.password ? { user: decodeURIComponent(u.username) } : {}),
    // ccache's redis://PASSWORD@host: a lone userinfo part is the password.
    ...(u.password ? { password: decodeURIComponent(u.password) } : u.username ? { password: decodeURIComponent(u.username) } : {}),
  };
  if (u.protocol === 'redis+unix:') return u.pathname && u.pathname !== '/' ? { kind: 'unix', path: decodeURIComponent(u.pathname), ...auth } : null;
  if (u.protocol !== 'redis:' || !u.hostname) return null;
  return { kind: 'tcp', host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379, ...auth };
}

const bulk = (words: string[]) => `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`;

export function pingRedis(t: RedisTarget, timeoutMs: number): Promise<{ ok: true } | { ok: false; detail: string }> {
  return new Promise((resolve) => {
    const sock = t.kind === 'tcp' ? connect({ host: t.host, port: t.port }) : connect({ path: t.path });
    let buf = '';
    const done = (r: { ok: true } | { ok: false; detail: string }) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: e.code ?? e.message }));
    sock.on('connect', () => {
      const auth = t.password ? bulk(['AUTH', ...(t.user ? [t.user] : []), t.password]) : '';
      sock.write(auth + bulk(['PING']));
    });
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const lines = buf.split('\r\n');
      for (const l of lines.slice(0, -1)) {
        if (l.startsWith('-')) return done({ ok: false, detail: `redis said: ${l.slice(1)}` });
        if (l === '+PONG') return done({ ok: true });
      }
    });
  });
}
