/**
 * The Asterisk configuration as provisioning writes it (`scripts/asterisk.sh render DIR`: the same
 * templates and filling as `provision`, without root and without touching the running Asterisk):
 * ARI/HTTP on loopback only, the ARI password from the environment (refused in production when it is the
 * development default or short), no anonymous SIP endpoint, the callers' trunk bound to its addresses.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';

const ROOT = path.resolve(import.meta.dirname, '../..');
const execFileP = promisify(execFile);

interface Section {
  name: string;
  templates: string[];
  isTemplate: boolean;
  values: Array<[string, string]>;
}

/** Asterisk's .conf syntax: [name](template,...) or [name](!), key=value / key => value, ; comments */
function parseConf(text: string): Section[] {
  const out: Section[] = [];
  let cur: Section | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|[^\\]);.*$/, '$1').trim();
    if (!line) continue;
    const head = /^\[([^\]]+)\](?:\(([^)]*)\))?$/.exec(line);
    if (head) {
      const inherits = (head[2] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      cur = { name: head[1]!, templates: inherits.filter((s) => s !== '!'), isTemplate: inherits.includes('!'), values: [] };
      out.push(cur);
      continue;
    }
    const kv = /^([^=]+?)\s*=>?\s*(.*)$/.exec(line);
    if (kv && cur) cur.values.push([kv[1]!.trim(), kv[2]!.trim()]);
  }
  return out;
}

/** the section's values with its templates' first (what Asterisk sees) */
function resolved(sections: Section[], s: Section): Array<[string, string]> {
  const fromTemplates = s.templates.flatMap((n) => {
    const tpl = sections.find((x) => x.name === n);
    return tpl ? resolved(sections, tpl) : [];
  });
  return [...fromTemplates, ...s.values];
}
const all = (vals: Array<[string, string]>, key: string) => vals.filter(([k]) => k === key).map(([, v]) => v);
const one = (vals: Array<[string, string]>, key: string) => all(vals, key).at(-1);

async function render(env: Record<string, string>): Promise<{ dir: string; files: Record<string, string> }> {
  const base = await mkdtemp(path.join(tmpdir(), 'hotline-ast-'));
  const dir = path.join(base, 'etc');
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['ARI_USER', 'ARI_PASSWORD', 'SIP_TRUNK_ADDRESSES', 'NODE_ENV'].includes(k)));
  await execFileP('bash', [path.join(ROOT, 'scripts/asterisk.sh'), 'render', dir], { env: { ...clean, ...env }, timeout: 30_000 });
  const files: Record<string, string> = {};
  for (const f of await readdir(dir)) files[f] = await readFile(path.join(dir, f), 'utf8');
  return { dir, files };
}

async function renderFails(env: Record<string, string>): Promise<string> {
  try {
    await render(env);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`render succeeded with ${JSON.stringify(env)}`);
}

const PASSWORD = 'a-strong-ari-password-42';

t.test('every placeholder is filled in; the ARI credentials come from the environment', async (t) => {
  const { files } = await render({ ARI_USER: 'ctl', ARI_PASSWORD: PASSWORD });
  for (const [name, text] of Object.entries(files)) t.notMatch(text, /@[A-Z][A-Z0-9_]*@/, `${name}: no placeholder left`);
  const ari = parseConf(files['ari.conf']!);
  const users = ari.filter((s) => one(s.values, 'type') === 'user');
  t.same(
    users.map((u) => u.name),
    ['ctl'],
    'exactly one ARI user: ARI_USER',
  );
  t.equal(one(users[0]!.values, 'password'), PASSWORD, 'its password is ARI_PASSWORD');
  t.equal(one(ari.find((s) => s.name === 'general')!.values, 'enabled'), 'yes');
  t.notMatch(files['ari.conf']!.replace(/^password=.*$/m, ''), PASSWORD, 'the password is written once, not in a comment');
  const other = await render({ ARI_USER: 'ctl', ARI_PASSWORD: 'another;secret-password' });
  t.match(other.files['ari.conf']!, /^password=another\\;secret-password$/m, "a ';' in the password is escaped for Asterisk's parser");
});

t.test('ARI and the HTTP server listen on loopback only; AMI is off', async (t) => {
  const { files } = await render({ ARI_PASSWORD: PASSWORD });
  const http = parseConf(files['http.conf']!);
  const general = http.find((s) => s.name === 'general')!.values;
  t.equal(one(general, 'enabled'), 'yes');
  t.same(all(general, 'bindaddr'), ['127.0.0.1'], 'bindaddr=127.0.0.1, once');
  t.equal(one(general, 'bindport'), '8088');
  t.not(one(general, 'tlsenable'), 'yes', 'no TLS listener on another address');
  t.same(all(general, 'tlsbindaddr'), [], 'no tlsbindaddr');
  t.not(one(general, 'enablestatic'), 'yes', 'no static files');
  const manager = parseConf(files['manager.conf']!);
  t.equal(one(manager.find((s) => s.name === 'general')!.values, 'enabled'), 'no', 'AMI disabled');
});

t.test('no anonymous SIP endpoint; the trunk is identified by and limited to its addresses', async (t) => {
  const { files } = await render({ ARI_PASSWORD: PASSWORD });
  const pjsip = parseConf(files['pjsip.conf']!);
  const global = pjsip.find((s) => one(s.values, 'type') === 'global')!;
  const order = (one(global.values, 'endpoint_identifier_order') ?? 'ip,username,anonymous').split(',').map((s) => s.trim());
  t.notOk(order.includes('anonymous'), 'the anonymous identifier is not in endpoint_identifier_order');
  t.notOk(
    pjsip.some((s) => s.name.toLowerCase() === 'anonymous'),
    'no section named anonymous',
  );

  const endpoints = pjsip.filter((s) => !s.isTemplate && one(resolved(pjsip, s), 'type') === 'endpoint');
  t.ok(endpoints.length > 0, 'endpoints are configured');
  for (const e of endpoints) {
    const v = resolved(pjsip, e);
    if (one(v, 'auth')) continue; // with credentials: must authenticate
    // no credentials: reachable only from the addresses its identify and ACL name
    t.equal(one(v, 'identify_by'), 'ip', `${e.name}: identified by source address only`);
    t.same(all(v, 'deny'), ['0.0.0.0/0.0.0.0'], `${e.name}: denies everyone first`);
    const permits = all(v, 'permit').flatMap((p) => p.split(','));
    t.same(permits, ['127.0.0.1'], `${e.name}: permits the trunk's address`);
    const ids = pjsip.filter((s) => one(s.values, 'type') === 'identify' && one(s.values, 'endpoint') === e.name);
    t.equal(ids.length, 1, `${e.name}: one identify section`);
    t.same(all(ids[0]!.values, 'match').flatMap((m) => m.split(',')), ['127.0.0.1'], `${e.name}: matched by the trunk's address`);
  }
  for (const tr of pjsip.filter((s) => one(s.values, 'type') === 'transport')) {
    t.match(one(tr.values, 'bind') ?? '', /^127\.0\.0\.1:\d+$/, `${tr.name}: bound to loopback`);
  }
  t.match(parseConf(files['extensions.conf']!).find((s) => s.name === 'agents')?.values ?? [], [['exten', /Hangup/]], "agents' phones cannot dial out");
});

t.test('SIP_TRUNK_ADDRESSES names the trunk; "anyone" and garbage are refused', async (t) => {
  const { files } = await render({ ARI_PASSWORD: PASSWORD, SIP_TRUNK_ADDRESSES: '10.20.30.40,10.20.31.0/24' });
  const pjsip = parseConf(files['pjsip.conf']!);
  const callers = resolved(pjsip, pjsip.find((s) => s.name === 'callers')!);
  t.same(all(callers, 'permit'), ['10.20.30.40,10.20.31.0/24']);
  t.same(all(pjsip.find((s) => s.name === 'callers-identify')!.values, 'match'), ['10.20.30.40,10.20.31.0/24']);
  for (const bad of ['0.0.0.0/0', '10.0.0.1,0.0.0.0/0', '0.0.0.0', '1.2.3.4/0', 'example.org', '10.0.0.1;permit=0.0.0.0', '10.0.0.1\npermit=0.0.0.0/0.0.0.0', '999.1.1.1']) {
    t.match(await renderFails({ ARI_PASSWORD: PASSWORD, SIP_TRUNK_ADDRESSES: bad }), /SIP_TRUNK_ADDRESSES must/, JSON.stringify(bad));
  }
});

t.test('in production the development ARI password and short ones are refused', async (t) => {
  t.match(await renderFails({ NODE_ENV: 'production' }), /ARI_PASSWORD must be set in production/, 'the default');
  t.match(await renderFails({ NODE_ENV: 'production', ARI_PASSWORD: 'hotline-dev' }), /ARI_PASSWORD must be set in production/, 'the default, given');
  t.match(await renderFails({ NODE_ENV: 'production', ARI_PASSWORD: 'short-pass-15ch' }), /at least 16 characters/, '15 characters');
  const ok = await render({ NODE_ENV: 'production', ARI_PASSWORD: 'sixteen-chars-ok' });
  t.match(ok.files['ari.conf']!, /^password=sixteen-chars-ok$/m, '16 characters are enough');
  t.match(await renderFails({ ARI_PASSWORD: 'two\nlines-password' }), /one line/, 'never a second line (it would add config)');
  t.match(await renderFails({ ARI_USER: 'x]\n[evil', ARI_PASSWORD: PASSWORD }), /ARI_USER must be/, 'a user name cannot open a section');
  const dev = await render({});
  t.match(dev.files['ari.conf']!, /^password=hotline-dev$/m, 'development keeps its default');
});
