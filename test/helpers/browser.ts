/**
 * Headless Chromium for the page tests: Debian's /usr/bin/chromium (scripts/browser.sh installs it) driven by
 * playwright-core, never a browser Playwright downloads. The pages are the real Vite build in dist/web,
 * built here when missing. Screenshots go to test-artefacts/ (gitignored).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const ARTEFACTS = path.join(ROOT, 'test-artefacts');
export const CHROMIUM = '/usr/bin/chromium';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** dist/web with both pages (npm run build:web when a page is missing) */
export function ensureWebBuilt(): string {
  const dir = path.join(ROOT, 'dist', 'web');
  if (!existsSync(path.join(dir, 'wallboard.html')) || !existsSync(path.join(dir, 'console.html'))) {
    execFileSync('npm', ['run', '--silent', 'build:web'], { cwd: ROOT, stdio: 'inherit', timeout: 180_000 });
  }
  return dir;
}

/** Chromium, closed at teardown; the flags keep it off the (closed) network and quiet */
export async function launchBrowser(t: Teardown): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/browser.sh`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** a page of its own context (own storage), with the browser's console errors collected */
export async function newPage(browser: Browser, opts: { width?: number; height?: number } = {}): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1920, height: opts.height ?? 1080 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return { page, errors };
}

/** test-artefacts/<name>, its folder created */
export function artefact(name: string): string {
  mkdirSync(ARTEFACTS, { recursive: true });
  return path.join(ARTEFACTS, name);
}

/** poll until the text of `selector` satisfies pred; returns the text */
export async function textBecomes(page: Page, selector: string, pred: (s: string) => boolean, timeoutMs: number, what: string): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    last = ((await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => null)) ?? '').trim();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${selector} shows "${last}")`);
    await page.waitForTimeout(50);
  }
}
