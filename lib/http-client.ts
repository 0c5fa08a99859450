/**
 * A small HTTP/1.1 client on node's own http/https modules, for a remote cache:
 * GET (into memory or a stream), HEAD and PUT, each under a bounded deadline
 * (connect + whole transfer) and an idle timeout, so a slow or silent server
 * costs at most that long. Credentials: URL userinfo becomes a Basic
 * Authorization header and never appears in `displayUrl`; extra headers (a token
 * from the environment) are passed in and never printed here.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface HttpTarget {
  /** The base URL without userinfo, ending in "/". */
  base: URL;
  /** Headers sent with every request (Authorization from userinfo or the environment). */
  headers: Record<string, string>;
}

export type HttpFailure = { kind: 'timeout' | 'network'; detail: string };

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly failure: HttpFailure,
    message: string,
  ) {
    super(message);
  }
}

/** The URL as it may be shown: no userinfo, no query (a token may hide there). */
export function displayUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid URL>';
  }
}

/** Parse a cache URL; userinfo moves into a Basic header. Throws a plain Error with a printable message. */
export function httpTarget(raw: string, extraHeaders: Record<string, string> = {}): HttpTarget {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`not a URL: ${displayUrl(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${displayUrl(raw)}: only http:// and https:// are supported`);
  const headers: Record<string, string> = { ...extraHeaders };
  if (u.username || u.password) {
    headers['authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  }
  const base = new URL(`${u.protocol}//${u.host}${u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`}`);
  return { base, headers };
}

export interface RequestOptions {
  method: 'GET' | 'HEAD' | 'PUT';
  /** Whole request, connect to last byte. */
  deadlineMs: number;
  /** No byte for this long: given up. */
  idleMs: number;
  /** PUT body: bytes, or a stream factory (a file) with its length. */
  body?: Buffer | { length: number; open: () => Readable };
  /** GET: the body goes here (only for status 200) instead of into memory. */
  sink?: Writable;
  /** GET into memory: refuse a body larger than this. */
  maxBytes?: number;
  /** Aborts the request (the run was interrupted). */
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** The body read into memory (GET without sink, status 200), else null. */
  body: Buffer | null;
}

/**
 * One request. Resolves with the status for any HTTP answer; rejects with
 * HttpError for a timeout, a refused connection or a broken transfer.
 */
export function request(target: HttpTarget, path: string, o: RequestOptions): Promise<HttpResponse> {
  const url = new URL(path, target.base);
  const shown = `${o.method} ${displayUrl(url.href)}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const headers: Record<string, string | number> = { ...target.headers };
    if (o.body) headers['content-length'] = o.body.length;
    const req = send(url, { method: o.method, headers, agent: false });
    const finish = (err: HttpError | null, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(res!);
    };
    const deadline = setTimeout(() => finish(new HttpError({ kind: 'timeout', detail: `no complete answer within ${o.deadlineMs} ms` }, `${shown}: no complete answer within ${o.deadlineMs} ms`)), o.deadlineMs);
    const onAbort = () => finish(new HttpError({ kind: 'network', detail: 'interrupted' }, `${shown}: interrupted`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(o.idleMs, () => finish(new HttpError({ kind: 'timeout', detail: `silent for ${o.idleMs} ms` }, `${shown}: silent for ${o.idleMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => finish(new HttpError({ kind: 'network', detail: e.code ?? e.message }, `${shown}: ${e.code ?? e.message}`)));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (o.method === 'HEAD' || status !== 200 || o.method === 'PUT') {
        res.resume();
        res.on('end', () => finish(null, { status, body: null }));
        res.on('error', (e) => finish(new HttpError({ kind: 'network', detail: e.message }, `${shown}: ${e.message}`)));
        return;
      }
      if (o.sink) {
        pipeline(res, o.sink).then(
          () => finish(null, { status, body: null }),
          (e: Error) => finish(new HttpError({ kind: 'network', detail: e.message }, `${shown}: transfer broken: ${e.message}`)),
        );
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (o.maxBytes !== undefined && size > o.maxBytes) finish(new HttpError({ kind: 'network', detail: 'too large' }, `${shown}: body larger than ${o.maxBytes} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => finish(null, { status, body: Buffer.concat(chunks) }));
      res.on('error', (e) => finish(new HttpError({ kind: 'network', detail: e.message }, `${shown}: transfer broken: ${e.message}`)));
    });
    if (!o.body) req.end();
    else if (Buffer.isBuffer(o.body)) req.end(o.body);
    else {
      pipeline(o.body.open(), req).catch((e: Error) => finish(new HttpError({ kind: 'network', detail: e.message }, `${shown}: upload broken: ${e.message}`)));
    }
  });
}
