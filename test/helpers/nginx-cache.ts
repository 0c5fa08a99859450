/**
 * A real remote cache for tests: Debian's nginx (specs/host-packages.txt) on a
 * loopback port, with its own config, data and temp dirs in a temp folder, WebDAV
 * PUT on, so it stores /ac/ and /cas/ as any Bazel remote-cache HTTP server would.
 * The temp path is on the data's filesystem: a PUT lands as a rename, never half.
 * Optional Basic auth (an htpasswd file) for the credential tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { run } from '../../lib/proc.js';

export interface NginxCache {
  url: string;
  port: number;
  /** Where /ac/ and /cas/ live on disk. */
  dataDir: string;
  /** Every file under /ac/ and /cas/, relative to dataDir. */
  files(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(root, rel), { withFileTypes: true }).catch(() => [])) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(root, p)));
    else out.push(p);
  }
  return out.sort();
}

/** Start nginx; `auth` adds HTTP Basic auth with that user and password, `token` requires an X-Cache-Token header. */
export async function startNginxCache(o: { auth?: { user: string; password: string }; token?: string } = {}): Promise<NginxCache> {
  const tmp = await dir({ unsafeCleanup: true });
  const root = tmp.path;
  const dataDir = join(root, 'data');
  for (const d of ['data/ac', 'data/cas', 'tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi', 'logs']) await mkdir(join(root, d), { recursive: true });
  let auth = '';
  if (o.auth) {
    // {SHA} scheme: base64 of the password's SHA-1, which nginx reads without any tool to make it.
    const sha = createHash('sha1').update(o.auth.password).digest('base64');
    await writeFile(join(root, 'htpasswd'), `${o.auth.user}:{SHA}${sha}\n`);
    auth = `auth_basic "cache"; auth_basic_user_file ${join(root, 'htpasswd')};`;
  }
  // A bearer-style token in a header of its own (the config file's header_env).
  if (o.token) auth += ` if ($http_x_cache_token != "${o.token}") { return 401; }`;
  const port = await freePort();
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(root, 'nginx.pid')};
error_log ${join(root, 'logs/error.log')} warn;
events { worker_connections 64; }
http {
  access_log ${join(root, 'logs/access.log')};
  client_body_temp_path ${join(root, 'tmp/body')};
  proxy_temp_path ${join(root, 'tmp/proxy')};
  fastcgi_temp_path ${join(root, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(root, 'tmp/uwsgi')};
  scgi_temp_path ${join(root, 'tmp/scgi')};
  server {
    listen 127.0.0.1:${port};
    root ${dataDir};
    ${auth}
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      client_max_body_size 0;
      dav_access user:rw group:r all:r;
    }
  }
}
`;
  const confFile = join(root, 'nginx.conf');
  await writeFile(confFile, conf);
  const ac = new AbortController();
  const exited = run(['nginx', '-c', confFile, '-p', root, '-e', join(root, 'logs/error.log')], { signal: ac.signal, killGraceMs: 2000 });
  const url = `http://127.0.0.1:${port}/`;
  // Ready when it answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(url, { method: 'HEAD' }).then(() => true, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      ac.abort();
      const r = await exited;
      throw new Error(`nginx did not start on port ${port}: ${r.tail.join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    dataDir,
    files: () => walk(dataDir),
    stop: async () => {
      ac.abort();
      await exited;
      await tmp.cleanup();
    },
  };
}

export const randomToken = (): string => randomBytes(12).toString('hex');
