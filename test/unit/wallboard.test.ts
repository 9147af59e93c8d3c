/** The wallboard's small pieces: masking numbers, the key check, its settings, and which files the pages may serve. */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config/env.js';
import { resolveWebFile } from '../../src/web/web.routes.js';
import { wallboardKeyMatches } from '../../src/wallboard/wallboard-auth.js';
import { maskPhone } from '../../src/wallboard/wallboard.service.js';

t.test('phone numbers are masked: the first three and last four digits at most', async (t) => {
  t.equal(maskPhone('13812345678'), '138****5678');
  t.equal(maskPhone('+8613812345678'), '+861****5678');
  t.equal(maskPhone('1234567'), '123****4567');
  t.equal(maskPhone('123456'), '****56');
  t.equal(maskPhone('anonymous'), null);
  t.equal(maskPhone(undefined), null);
});

t.test('the wallboard key: equal or not, never with none configured', async (t) => {
  t.ok(wallboardKeyMatches('a-long-wallboard-key', 'a-long-wallboard-key'));
  t.notOk(wallboardKeyMatches('a-long-wallboard-kez', 'a-long-wallboard-key'));
  t.notOk(wallboardKeyMatches('a-long-wallboard-key', null));
  t.notOk(wallboardKeyMatches(undefined, 'a-long-wallboard-key'));
  t.notOk(wallboardKeyMatches('', ''));
});

t.test('settings: WALLBOARD_KEY (16+ printable characters), amber before red', async (t) => {
  t.same(loadConfig({}).wallboard, { key: null, amberSeconds: 30, redSeconds: 60 });
  t.same(loadConfig({ WALLBOARD_KEY: 'k'.repeat(16), WALLBOARD_AMBER_SECONDS: '20', WALLBOARD_RED_SECONDS: '45' }).wallboard, { key: 'k'.repeat(16), amberSeconds: 20, redSeconds: 45 });
  t.throws(() => loadConfig({ WALLBOARD_KEY: 'short' }), ConfigError);
  t.throws(() => loadConfig({ WALLBOARD_KEY: 'has a space in it somewhere' }), ConfigError);
  t.throws(() => loadConfig({ WALLBOARD_AMBER_SECONDS: '60', WALLBOARD_RED_SECONDS: '60' }), /WALLBOARD_RED_SECONDS/);
});

t.test('only files inside the web folder, of a known type, are served', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'hotline-webunit-'));
  const dir = path.join(root, 'web');
  mkdirSync(path.join(dir, 'assets'), { recursive: true });
  writeFileSync(path.join(dir, 'assets', 'a.js'), 'x');
  writeFileSync(path.join(dir, 'assets', 'b.exe'), 'x');
  writeFileSync(path.join(root, 'out.js'), 'x');
  symlinkSync(path.join(root, 'out.js'), path.join(dir, 'assets', 'link.js'));
  t.equal(await resolveWebFile(dir, 'assets/a.js'), path.join(dir, 'assets', 'a.js'));
  for (const bad of ['', 'assets', 'assets/b.exe', '../out.js', 'assets/../../out.js', './assets/a.js', '/etc/passwd', 'assets\\a.js', 'assets/%2e%2e/a.js', 'assets/a.js\0', 'assets/link.js', 'assets/missing.js']) {
    t.equal(await resolveWebFile(dir, bad), null, JSON.stringify(bad));
  }
});
