/**
 * The floor's pages (wallboard, supervisor console): plain TypeScript, no framework, built by Vite into
 * dist/web, which the service serves (src/web/web.routes.ts) under /wallboard, /console and /web/.
 * `npm run build:web`; nothing is fetched from outside at run time (the hotline network is closed).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/web/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Chromium preloads modules itself; the polyfill would only add code
    modulePreload: { polyfill: false },
    rolldownOptions: {
      input: { wallboard: `${root}wallboard.html`, console: `${root}console.html` },
    },
  },
});
