/**
 * The floor's web pages, served from the Vite build in dist/web (`npm run build:web`; web/ holds the
 * sources): `/wallboard` (the video wall), `/console` (supervisors), and their files under `/web/...`.
 * No CDN and no outside fonts: everything a page needs is in that folder (the hotline network is closed).
 *
 * - Only files inside the folder, of a known type, are served: a path with `..`, a backslash, a NUL or an
 *   encoded separator is refused, and the resolved real path (symlinks followed) must stay inside.
 * - Vite names the files under assets/ by their content hash: cached for a year (immutable). The pages
 *   and anything else are revalidated on every load (no-cache, with an ETag), so a new build shows at once.
 * - The pages carry a Content-Security-Policy (own origin only) and no Referer, since a wallboard's
 *   address may hold its `?key=`.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, notFound } from '../shared/errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const PAGES: Record<string, string> = { '/wallboard': 'wallboard.html', '/console': 'console.html' };

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** dist/web of this checkout: found from this file (src/web when run from source, dist/src/web when built) */
export function defaultWebDir(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'web');
    dir = path.dirname(dir);
  }
  return path.resolve('dist', 'web');
}

/** the file under root for a requested relative path, or null when it is not one we serve */
export async function resolveWebFile(root: string, rel: string): Promise<string | null> {
  if (rel === '' || rel.length > 512) return null;
  // refused outright: parent segments, absolute paths, Windows separators, NULs, anything still percent-encoded
  if (/(^|\/)\.\.?(\/|$)/.test(rel) || rel.startsWith('/') || /[\\\0%]/.test(rel)) return null;
  if (!TYPES[path.extname(rel).toLowerCase()]) return null;
  const full = path.resolve(root, rel);
  const base = path.resolve(root);
  if (!full.startsWith(base + path.sep)) return null;
  try {
    const [real, realBase] = await Promise.all([fs.realpath(full), fs.realpath(base)]);
    if (!real.startsWith(realBase + path.sep)) return null;
    const st = await fs.stat(real);
    return st.isFile() ? real : null;
  } catch {
    return null;
  }
}

async function sendFile(req: FastifyRequest, reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> {
  const [st, body] = await Promise.all([fs.stat(file), fs.readFile(file)]);
  const etag = `"${createHash('sha1').update(body).digest('base64url').slice(0, 20)}"`;
  const type = TYPES[path.extname(file).toLowerCase()]!;
  reply.header('content-type', type).header('cache-control', cache).header('etag', etag).header('last-modified', st.mtime.toUTCString());
  reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
  if (type.startsWith('text/html')) reply.header('content-security-policy', CSP).header('x-frame-options', 'DENY');
  if (req.headers['if-none-match'] === etag) return reply.code(304).send();
  return reply.code(200).send(body);
}

export const webRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, opts) => {
  const root = opts.dir ?? defaultWebDir();

  for (const [url, file] of Object.entries(PAGES)) {
    app.get(url, { schema: { hide: true } }, async (req, reply) => {
      const found = await resolveWebFile(root, file);
      if (!found) throw new AppError(503, 'web-not-built', `the web pages are not built (${file} is missing in ${root}): run npm run build:web`);
      return sendFile(req, reply, found, 'no-cache');
    });
  }

  app.get('/web/*', { schema: { hide: true } }, async (req, reply) => {
    const rel = (req.params as { '*': string })['*'] ?? '';
    const found = await resolveWebFile(root, rel);
    if (!found) throw notFound('not-found', `no file /web/${rel.slice(0, 100)}`);
    const immutable = rel.startsWith('assets/');
    return sendFile(req, reply, found, immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  });
};
