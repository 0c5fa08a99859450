import { describe, expect, it } from 'vitest';
import { displayUrl, httpTarget } from './http-client.js';

describe('http-client URLs', () => {
  it('displayUrl never shows userinfo or a query string', () => {
    expect(displayUrl('http://ci:s3cret@cache.example:8080/clawos/?token=abc')).toBe('http://cache.example:8080/clawos/');
    expect(displayUrl('not a url ci:s3cret')).toBe('<invalid URL>');
  });

  it('httpTarget moves userinfo into a Basic header and ends the base in /', () => {
    const t = httpTarget('http://ci:p%40ss@127.0.0.1:9/cache', { 'x-cache-token': 't' });
    expect(t.base.href).toBe('http://127.0.0.1:9/cache/');
    expect(t.headers).toEqual({ 'x-cache-token': 't', authorization: `Basic ${Buffer.from('ci:p@ss').toString('base64')}` });
    expect(() => httpTarget('ftp://cache.example/')).toThrow('ftp://cache.example/: only http:// and https:// are supported');
  });
});
