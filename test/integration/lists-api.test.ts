/**
 * The lists API (API.md "Lists") on the real PostgreSQL: entries and roles, bulk imports of 10,000 numbers in
 * every format with broken lines mixed in, all-or-nothing vs best-effort, staged imports, replace, export and
 * its round trip, the audit trail.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import { hashPassword } from '../../src/auth/passwords.js';
import { standingOf } from '../../src/lists/lists.repo.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { writeXlsx, type Cell } from '../helpers/xlsx.js';

const infra = await testInfra(t, 'lists');
const { app, api, tokens } = await buildTestApp(t, infra, {});
const { db } = infra;

const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
type Kind = 'black' | 'white';

const count = async (kind: Kind) => Number((await db.selectFrom('list_entries').select((eb) => eb.fn.countAll<string>().as('n')).where('kind', '=', kind).executeTakeFirstOrThrow()).n);
const auditRows = (action: string) => db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('seq').execute();

/** imports are limited to 10 a minute per user: a fresh supervisor every 8 uploads */
let uploads = 0;
let uploader = '';
async function newToken(role: 'supervisor' | 'admin'): Promise<string> {
  const username = `t-up-${randomBytes(4).toString('hex')}`;
  await db.insertInto('users').values({ username, password_hash: await hashPassword('pw-secret'), role, agent_id: null }).execute();
  const r = await api('POST', '/api/v1/auth/login', null, { username, password: 'pw-secret' });
  return r.body.token as string;
}
async function uploaderToken(): Promise<string> {
  if (uploads++ % 8 === 0) uploader = await newToken('supervisor');
  return uploader;
}

async function upload(kind: Kind, body: Buffer | string, contentType: string, query = '', token?: string) {
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/lists/${kind}/import${query ? `?${query}` : ''}`,
    headers: { authorization: `Bearer ${token ?? (await uploaderToken())}`, 'content-type': contentType },
    payload: body,
  });
  return { status: res.statusCode, body: JSON.parse(res.body), headers: res.headers };
}

t.test('entries: add, duplicate 409, validation 400 changes nothing, list, filter, delete', async (t) => {
  const add = await api('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '+86 138-0013-8000', reason: '骚扰坐席', treatment: 'restrict' });
  t.equal(add.status, 201);
  t.match(add.body, { number: '13800138000', reason: '骚扰坐席', treatment: 'restrict', expiresAt: null, createdBy: /^t-supervisor-/, expired: false });
  t.match(await standingOf(db, '13800138000'), { black: { reason: '骚扰坐席', treatment: 'restrict' }, white: null }, 'the call path sees it');

  const again = await api('POST', '/api/v1/lists/black/entries', tokens.admin, { number: '13800138000', reason: 'again' });
  t.equal(again.status, 409);
  t.equal(again.body.error.code, 'duplicate');
  t.match(again.body.error.message, /already on the black list/);

  const before = await count('black');
  const bad: Array<[unknown, number, string]> = [
    [{ number: '1380013800x', reason: 'x' }, 400, 'invalid-number'],
    [{ number: '12345', reason: 'x' }, 400, 'protected-number'],
    [{ number: '110', reason: 'x' }, 400, 'protected-number'],
    [{ number: '0898 12345', reason: 'x' }, 400, 'protected-number'],
    [{ number: '95198', reason: 'x' }, 400, 'protected-number'],
    [{ number: '13800138001', reason: 'x', treatment: 'priority' }, 400, 'invalid-treatment'],
    [{ number: '13800138001', reason: 'x', treatment: 'hangup' }, 400, 'invalid-request'],
    [{ number: '13800138001', reason: 'x', expiresAt: '2020-01-01T00:00:00Z' }, 400, 'invalid-expiry'],
    [{ number: '13800138001', reason: 'x', expiresAt: 'soon-ish please' }, 400, 'invalid-expiry'],
    [{ number: '13800138001', reason: '=HYPERLINK("http://evil")' }, 400, 'invalid-reason'],
    [{ number: '13800138001', reason: '   ' }, 400, 'invalid-request'],
    [{ number: '13800138001' }, 400, 'invalid-request'],
    [{ number: '13800138001', reason: 'x', colour: 'red' }, 400, 'invalid-request'],
  ];
  for (const [body, status, code] of bad) {
    const r = await api('POST', '/api/v1/lists/black/entries', tokens.supervisor, body);
    t.equal(r.status, status, JSON.stringify(body));
    t.equal(r.body.error?.code, code, JSON.stringify(body));
    t.notMatch(JSON.stringify(r.body), /at .*\.ts:\d+/, 'no stack trace');
  }
  t.equal(await count('black'), before, 'bad input changed nothing');

  const white = await api('POST', '/api/v1/lists/white/entries', tokens.admin, { number: '12345', reason: 'test line', treatment: 'skip-menu', expiresAt: '2099-12-31' });
  t.equal(white.status, 201, 'a service number may be whitelisted');
  t.equal(white.body.expiresAt, '2099-12-31T16:00:00.000Z', 'a date means until its end in Asia/Shanghai');
  t.equal((await api('POST', '/api/v1/lists/white/entries', tokens.admin, { number: '13800138009', reason: 'x', treatment: 'restrict' })).body.error.code, 'invalid-treatment');

  // an expired entry is absent: hidden, ignored by the call path, replaced by a new add
  await db.insertInto('list_entries').values({ kind: 'black', number: '13700000000', reason: 'old', treatment: 'queue', expires_at: new Date(Date.now() - 60_000) }).execute();
  t.same((await standingOf(db, '13700000000')).black, null);
  t.same((await api('GET', '/api/v1/lists/black/entries?number=13700000000', tokens.auditor)).body.items, []);
  const withExpired = await api('GET', '/api/v1/lists/black/entries?number=13700000000&includeExpired=true', tokens.auditor);
  t.match(withExpired.body.items, [{ number: '13700000000', expired: true }]);
  const renewed = await api('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '13700000000', reason: 'back again', treatment: 'queue' });
  t.equal(renewed.status, 201, 'an expired entry is replaced');
  t.match(await standingOf(db, '13700000000'), { black: { reason: 'back again', treatment: 'queue' } });
  await api('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '13700000001', reason: 'line decides' });
  t.match(await standingOf(db, '13700000001'), { black: { treatment: 'line' } }, 'no treatment: the line decides');

  const list = await api('GET', '/api/v1/lists/black/entries', tokens.auditor);
  t.equal(list.status, 200);
  t.same(
    list.body.items.map((e: { number: string }) => e.number),
    ['13700000001', '13700000000', '13800138000'],
    'newest first',
  );
  t.same((await api('GET', `/api/v1/lists/black/entries?number=${encodeURIComponent('+86 138 0013 8000')}`, tokens.auditor)).body.items.length, 1, 'number filter normalises');
  t.same(
    (await api('GET', `/api/v1/lists/black/entries?q=${encodeURIComponent('骚扰')}`, tokens.auditor)).body.items.map((e: { number: string }) => e.number),
    ['13800138000'],
    'q searches the reason',
  );
  t.equal((await api('GET', '/api/v1/lists/black/entries?number=abc', tokens.auditor)).body.error.code, 'invalid-number');
  t.equal((await api('GET', '/api/v1/lists/black/entries?cursor=bm9wZQ', tokens.auditor)).body.error.code, 'invalid-cursor');
  t.equal((await api('GET', '/api/v1/lists/grey/entries', tokens.auditor)).status, 400);

  const del = await api('DELETE', `/api/v1/lists/black/entries/${encodeURIComponent('+86 138 0013 8000')}`, tokens.supervisor);
  t.equal(del.status, 204);
  t.same((await standingOf(db, '13800138000')).black, null);
  const gone = await api('DELETE', '/api/v1/lists/black/entries/13800138000', tokens.supervisor);
  t.equal(gone.status, 404);
  t.equal(gone.body.error.code, 'not-found');
  t.equal((await api('DELETE', '/api/v1/lists/black/entries/abc', tokens.supervisor)).body.error.code, 'invalid-number');

  const adds = await auditRows('list.add');
  t.match(adds[0], { target: 'black:13800138000', actor: /^t-supervisor-/, actor_role: 'supervisor', address: '127.0.0.1', details: { reason: '骚扰坐席', treatment: 'restrict', expiresAt: null } });
  t.same(
    adds.map((a) => a.target),
    ['black:13800138000', 'white:12345', 'black:13700000000', 'black:13700000001'],
    'one audit row per entry added, none for refused input',
  );
  t.match(await auditRows('list.remove'), [{ target: 'black:13800138000', actor: /^t-supervisor-/, actor_role: 'supervisor', details: { reason: '骚扰坐席' } }]);
  await db.deleteFrom('list_entries').execute();
});

t.test('roles: supervisor and admin change; auditor reads only; agent 403; no token 401', async (t) => {
  const id = randomUUID();
  const reads = ['/api/v1/lists/black/entries', '/api/v1/lists/white/export', `/api/v1/lists/black/imports/${id}`];
  for (const p of reads) {
    t.equal((await api('GET', p, tokens.agent)).status, 403, `agent ${p}`);
    t.equal((await api('GET', p, null)).status, 401, `anonymous ${p}`);
    t.equal((await api('GET', p, tokens.auditor)).status, p.includes('imports') ? 404 : 200, `auditor ${p}`);
  }
  for (const role of ['auditor', 'agent'] as const) {
    t.equal((await api('POST', '/api/v1/lists/black/entries', tokens[role], { number: '13800138000', reason: 'x' })).status, 403, role);
    t.equal((await api('DELETE', '/api/v1/lists/black/entries/13800138000', tokens[role])).status, 403, role);
    t.equal((await upload('black', '13800138000\n', 'text/csv', '', tokens[role])).status, 403, role);
    t.equal((await api('POST', `/api/v1/lists/black/imports/${id}/apply`, tokens[role])).status, 403, role);
  }
  t.equal(await count('black'), 0);
});

// ---------------------------------------------------------------- 10,000 numbers per format

type Item = { t: 'good'; number: string; reason: string } | { t: 'bad'; csv: string; plain: string; json: unknown; xlsx: Cell[] } | { t: 'empty' } | { t: 'dup'; number: string };

/** 10,000 good numbers (139 f nnnnnnn) with broken lines at fixed places */
function items(f: number): Item[] {
  const out: Item[] = [];
  for (let i = 0; i < 10_000; i++) out.push({ t: 'good', number: `139${f}${String(i).padStart(7, '0')}`, reason: i % 3 === 0 ? `投诉 ${i}` : `reason, ${i}` });
  const first = `139${f}0000000`;
  const insert: Array<[number, Item]> = [
    [5, { t: 'bad', csv: '1380013800x,bad digits', plain: '1380013800x', json: '1380013800x', xlsx: ['1380013800x', 'bad digits'] }],
    [100, { t: 'empty' }],
    [101, { t: 'empty' }],
    [2500, { t: 'bad', csv: '13800000001,a,,,extra column', plain: '13800000001 x', json: { number: '13800000001', colour: 'red' }, xlsx: [13800000001, 'a', null, null, 'extra column'] }],
    [5000, { t: 'dup', number: first }],
    [7777, { t: 'bad', csv: '13800000002,=1+1', plain: '=1+1', json: { number: '13800000002', reason: '@SUM(A1)' }, xlsx: [13800000002, { formula: 'A1+1', cached: '2' }] }],
    [9000, { t: 'bad', csv: '12345,the hotline', plain: '12345', json: '12345', xlsx: [12345, 'the hotline'] }],
    [9999, { t: 'bad', csv: '13800000003,x,,priority', plain: '+86 abc', json: { number: '13800000003', treatment: 'priority' }, xlsx: [13800000003, 'x', null, 'priority'] }],
  ];
  for (const [at, it] of insert.reverse()) out.splice(at, 0, it);
  return out;
}

interface Rendered {
  body: Buffer;
  contentType: string;
  badLines: number[];
  dupLines: number[];
}

function render(format: 'csv-header' | 'csv-bare' | 'plain' | 'json' | 'xlsx', list: Item[]): Rendered {
  const badLines: number[] = [];
  const dupLines: number[] = [];
  if (format === 'json') {
    const arr: unknown[] = [];
    for (const it of list) {
      if (it.t === 'empty') continue; // JSON has no empty lines
      arr.push(it.t === 'good' ? (arr.length % 2 ? it.number : { number: it.number, reason: it.reason }) : it.t === 'dup' ? it.number : it.json);
      if (it.t === 'bad') badLines.push(arr.length);
      if (it.t === 'dup') dupLines.push(arr.length);
    }
    return { body: Buffer.from(JSON.stringify(arr)), contentType: 'application/json', badLines, dupLines };
  }
  if (format === 'xlsx') {
    const rows: Cell[][] = [['number', 'reason']];
    for (const it of list) {
      rows.push(it.t === 'empty' ? [] : it.t === 'good' ? [Number(it.number), it.reason] : it.t === 'dup' ? [Number(it.number), 'again'] : it.xlsx);
      if (it.t === 'bad') badLines.push(rows.length);
      if (it.t === 'dup') dupLines.push(rows.length);
    }
    // the broken rows of the header layout: a 5-cell row against a 2-column header, a white treatment in no column
    return { body: writeXlsx(rows), contentType: XLSX, badLines, dupLines };
  }
  const lines: string[] = format === 'csv-header' ? ['number,reason,expiresAt,treatment'] : [];
  for (const it of list) {
    if (format === 'plain') lines.push(it.t === 'empty' ? '' : it.t === 'good' ? `  ${it.number} ` : it.t === 'dup' ? it.number : it.plain);
    else lines.push(it.t === 'empty' ? '' : it.t === 'good' ? `${it.number},"${it.reason}"` : it.t === 'dup' ? `${it.number},again` : it.csv);
    if (it.t === 'bad') badLines.push(lines.length);
    if (it.t === 'dup') dupLines.push(lines.length);
  }
  // with a header: BOM and Windows line ends; bare: LF; plain: BOM + CRLF
  const text = format === 'csv-bare' ? lines.join('\n') + '\n' : `\ufeff${lines.join('\r\n')}\r\n`;
  return { body: Buffer.from(text, 'utf8'), contentType: format === 'plain' ? 'text/plain' : 'text/csv; charset=utf-8', badLines, dupLines };
}

const FORMATS = ['csv-header', 'csv-bare', 'plain', 'json', 'xlsx'] as const;
FORMATS.forEach((format, f) => {
  t.test(`10,000 numbers as ${format} with broken lines: all-or-nothing refuses and changes nothing; best-effort adds the good ones`, async (t) => {
    const file = render(format, items(f));
    t.equal(file.badLines.length, 5);
    const before = await count('black');

    const refused = await upload('black', file.body, file.contentType);
    t.equal(refused.status, 422);
    t.match(refused.body, { mode: 'all-or-nothing', applied: false, status: 'rejected', added: 10_000, duplicates: 1, invalidCount: 5, removed: 0 });
    t.same(
      refused.body.invalid.map((l: { line: number }) => l.line),
      file.badLines,
      'each bad line with its line number',
    );
    t.same(
      refused.body.duplicateLines.map((l: { line: number }) => l.line),
      file.dupLines,
    );
    t.equal(refused.body.encoding, format === 'csv-header' || format === 'plain' ? 'utf-8-bom' : 'utf-8');
    t.equal(await count('black'), before, 'nothing was written');

    const best = await upload('black', file.body, file.contentType, 'mode=best-effort');
    t.equal(best.status, 200);
    t.match(best.body, { mode: 'best-effort', applied: true, status: 'applied', added: 10_000, duplicates: 1, invalidCount: 5 });
    t.same(
      best.body.invalid.map((l: { line: number }) => l.line),
      file.badLines,
    );
    t.equal(await count('black'), before + 10_000);
    const sample = await db.selectFrom('list_entries').selectAll().where('kind', '=', 'black').where('number', '=', `139${f}0000003`).executeTakeFirstOrThrow();
    t.match(sample, { reason: format === 'plain' ? /^import \d{4}-\d{2}-\d{2}$/ : format === 'json' ? /reason|投诉|import/ : '投诉 3', treatment: null, created_by: /^t-up-/ });

    const again = await upload('black', file.body, file.contentType, 'mode=best-effort');
    t.match(again.body, { added: 0, duplicates: 10_001, invalidCount: 5 }, 'the same file again: all duplicates');
    t.equal(again.body.duplicateLines.length, 1000, 'duplicate lines listed up to 1000');
    t.equal(await count('black'), before + 10_000);

    const report = await api('GET', `/api/v1/lists/black/imports/${refused.body.importId}`, tokens.auditor);
    t.match(report.body, { importId: refused.body.importId, status: 'rejected', invalidCount: 5 });
  });
});

t.test('a GBK-encoded CSV from Chinese Excel: read as GB18030, reported as such', async (t) => {
  // 号码,原因 CRLF 13600000000,骚扰电话
  const gbk = Buffer.concat([Buffer.from([0xba, 0xc5, 0xc2, 0xeb, 0x2c, 0xd4, 0xad, 0xd2, 0xf2]), Buffer.from('\r\n13600000000,'), Buffer.from([0xc9, 0xa7, 0xc8, 0xc5, 0xb5, 0xe7, 0xbb, 0xb0]), Buffer.from('\r\n')]);
  const r = await upload('black', gbk, 'text/csv');
  t.equal(r.status, 200);
  t.match(r.body, { encoding: 'gb18030', header: true, added: 1 });
  t.match(await standingOf(db, '13600000000'), { black: { reason: '骚扰电话' } });
});

t.test('default reason from ?reason=, audit of imports', async (t) => {
  const r = await upload('black', '13600000001\n13600000002\n', 'text/plain', `reason=${encodeURIComponent('市民投诉')}`);
  t.equal(r.status, 200);
  t.match(await standingOf(db, '13600000002'), { black: { reason: '市民投诉' } });
  const rows = await auditRows('list.import');
  t.match(rows.at(-1), { target: `black:import:${r.body.importId}`, actor_role: 'supervisor', details: { mode: 'all-or-nothing', added: 2, duplicates: 0, invalid: 0, format: 'text' } });
  t.ok(rows.some((a) => a.details.status === 'rejected'), 'refused imports are audited too');
});

t.test('staged import: nothing live until apply; apply reports what became a duplicate meanwhile', async (t) => {
  await db.deleteFrom('list_entries').where('kind', '=', 'white').execute();
  const file = JSON.stringify([{ number: '13500000001', reason: 'vip', treatment: 'priority' }, '13500000002', '13500000003', { number: '13500000004', treatment: 'skip-menu', expiresAt: '2099-01-01' }, '13500000005']);
  const staged = await upload('white', file, 'application/json', 'stage=true');
  t.equal(staged.status, 200);
  t.match(staged.body, { status: 'staged', applied: false, added: 5, duplicates: 0 });
  t.equal(await count('white'), 0, 'the live list is untouched');
  t.same((await standingOf(db, '13500000001')).white, null);

  t.equal((await api('POST', '/api/v1/lists/white/entries', tokens.supervisor, { number: '13500000003', reason: 'added by hand meanwhile' })).status, 201);
  const id = staged.body.importId as string;
  t.match((await api('GET', `/api/v1/lists/white/imports/${id}`, tokens.auditor)).body, { status: 'staged', applied: false, appliedAt: null });
  t.equal((await api('POST', `/api/v1/lists/black/imports/${id}/apply`, tokens.admin)).status, 404, 'an import belongs to its list');

  const applied = await api('POST', `/api/v1/lists/white/imports/${id}/apply`, tokens.admin);
  t.equal(applied.status, 200);
  t.match(applied.body, { status: 'applied', applied: true, added: 4, duplicates: 1, appliedBy: /^t-admin-/ });
  t.same(applied.body.duplicateLines, [{ line: 3, value: '13500000003', reason: '13500000003 is already on the white list' }]);
  t.equal(await count('white'), 5);
  t.match(await standingOf(db, '13500000001'), { white: { reason: 'vip', treatment: 'priority' } });
  t.match(await standingOf(db, '13500000003'), { white: { reason: 'added by hand meanwhile' } });
  t.equal((await db.selectFrom('list_import_rows').select('number').where('import_id', '=', id).execute()).length, 0, 'staged rows are gone once applied');

  const twice = await api('POST', `/api/v1/lists/white/imports/${id}/apply`, tokens.admin);
  t.equal(twice.status, 409);
  t.equal(twice.body.error.code, 'not-staged');
  t.equal((await api('POST', `/api/v1/lists/white/imports/${randomUUID()}/apply`, tokens.admin)).status, 404);
  t.equal((await api('POST', '/api/v1/lists/white/imports/not-a-uuid/apply', tokens.admin)).status, 400);
  t.match(await auditRows('list.apply'), [{ target: `white:import:${id}`, details: { added: 4, duplicates: 1 } }]);

  const refused = await upload('white', '13500000009\nabc\n', 'text/plain', 'stage=true');
  t.equal(refused.status, 422, 'all-or-nothing refuses to stage a broken file');
  t.equal((await api('POST', `/api/v1/lists/white/imports/${refused.body.importId}/apply`, tokens.admin)).body.error.code, 'not-staged');
});

t.test('replace: the file becomes the whole list in one transaction', async (t) => {
  const before = await db.selectFrom('list_entries').select('number').where('kind', '=', 'white').orderBy('number').execute();
  t.equal(before.length, 5);
  const broken = await upload('white', '13500000001,still vip,,priority\n13400000000\nnope-123\n', 'text/csv', 'replace=true');
  t.equal(broken.status, 422);
  t.equal(await count('white'), 5, 'a broken file replaces nothing');
  const nothing = await upload('white', 'abc\n', 'text/plain', 'replace=true&mode=best-effort');
  t.equal(nothing.status, 400);
  t.equal(nothing.body.error.code, 'nothing-to-replace', 'never an empty list by accident');

  const r = await upload('white', '13500000001,still vip,,skip-menu\n13400000000\n13400000001\n', 'text/csv', 'replace=true');
  t.equal(r.status, 200);
  t.match(r.body, { replace: true, applied: true, added: 2, duplicates: 1, removed: 4 });
  const after = await db.selectFrom('list_entries').selectAll().where('kind', '=', 'white').orderBy('number').execute();
  t.same(
    after.map((e) => e.number),
    ['13400000000', '13400000001', '13500000001'],
  );
  t.match(after[2], { reason: 'still vip', treatment: 'skip-menu' }, "the file's values win");

  // staged, then applied with replace
  const staged = await upload('white', '13300000000\n13400000000\n', 'text/plain', 'stage=true');
  const applied = await api('POST', `/api/v1/lists/white/imports/${staged.body.importId}/apply?replace=true`, tokens.supervisor);
  t.match(applied.body, { replace: true, added: 1, duplicates: 1, removed: 2 });
  t.same(
    (await db.selectFrom('list_entries').select('number').where('kind', '=', 'white').orderBy('number').execute()).map((e) => e.number),
    ['13300000000', '13400000000'],
  );
});

t.test('bad uploads: 4xx with the error shape, nothing changes', async (t) => {
  const before = await count('black');
  const token = await newToken('admin');
  const send = (body: Buffer | string, ct: string, q = '') => upload('black', body, ct, q, token);
  const png = await send(Buffer.from([0x89, 0x50, 0x4e, 0x47]), 'image/png');
  t.equal(png.status, 415);
  t.equal(png.body.error.code, 'unsupported-media-type');
  const big = await send(Buffer.alloc(9 * 1024 * 1024, 0x31), 'text/plain');
  t.equal(big.status, 413);
  t.equal(big.body.error.code, 'body-too-large');
  t.equal((await send('', 'text/csv')).body.error.code, 'empty-file');
  t.equal((await send('\r\n\r\n', 'text/csv')).body.error.code, 'empty-file');
  const notJson = await send('{"number": "13800138000"}', 'application/json');
  t.equal(notJson.status, 400);
  t.equal(notJson.body.error.code, 'invalid-file');
  const zipBomb = await send(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(100)]), XLSX);
  t.equal(zipBomb.body.error.code, 'invalid-file');
  t.match(zipBomb.body.error.message, /corrupt|xlsx/);
  t.equal((await send('13800138000\n', 'text/csv', 'mode=sometimes')).status, 400);
  t.equal((await send('13800138000\n', 'text/csv', 'colour=red')).status, 400);
  t.equal(await count('black'), before);
  // the limiter: the 11th import of a user within a minute
  const one = await newToken('supervisor');
  for (let i = 0; i < 10; i++) t.equal((await upload('black', '13600000001\n', 'text/plain', 'mode=best-effort', one)).status, 200);
  const limited = await upload('black', '13600000001\n', 'text/plain', 'mode=best-effort', one);
  t.equal(limited.status, 429);
  t.equal(limited.body.error.code, 'too-many-imports');
});

t.test('export: CSV with BOM, formula-safe cells, Shanghai file name; JSON; round trip', async (t) => {
  // a legacy row written straight to the table: the export must not hand Excel a formula
  await db.insertInto('list_entries').values({ kind: 'white', number: '+14155550100', reason: '=HYPERLINK("http://evil","click")', treatment: null }).execute();
  const res = await app.inject({ method: 'GET', url: '/api/v1/lists/white/export', headers: { authorization: `Bearer ${tokens.auditor}` } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/csv; charset=utf-8/);
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date()).replace(/-/g, '');
  t.equal(res.headers['content-disposition'], `attachment; filename="whitelist-${day}.csv"`);
  t.ok(res.rawPayload.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), 'UTF-8 BOM');
  const lines = res.body.replace(/^\ufeff/, '').trimEnd().split('\r\n');
  t.equal(lines[0], 'number,reason,treatment,expiresAt,createdAt,createdBy');
  t.equal(lines.length, 4);
  t.match(lines[1], /^'\+14155550100,"'=HYPERLINK\(""http:\/\/evil"",""click""\)",,,\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00,$/);
  await db.deleteFrom('list_entries').where('number', '=', '+14155550100').execute();

  // round trip through the white list: export, empty it, import the export back
  await api('POST', '/api/v1/lists/white/entries', tokens.supervisor, { number: '+1 415 555 0100', reason: '外宾热线, "VIP"', treatment: 'priority', expiresAt: '2099-06-30T12:00:00+08:00' });
  const pick = async () => (await db.selectFrom('list_entries').select(['number', 'reason', 'treatment', 'expires_at']).where('kind', '=', 'white').orderBy('number').execute()).map((e) => ({ ...e, expires_at: e.expires_at?.toISOString() ?? null }));
  const original = await pick();
  t.equal(original.length, 3);
  const csv = await app.inject({ method: 'GET', url: '/api/v1/lists/white/export?format=csv', headers: { authorization: `Bearer ${tokens.supervisor}` } });
  const json = await app.inject({ method: 'GET', url: '/api/v1/lists/white/export?format=json', headers: { authorization: `Bearer ${tokens.supervisor}` } });
  t.equal(json.headers['content-disposition'], `attachment; filename="whitelist-${day}.json"`);
  t.equal(JSON.parse(json.body).length, 3);
  for (const [file, ct] of [
    [csv.rawPayload, 'text/csv'],
    [json.rawPayload, 'application/json'],
  ] as const) {
    await db.deleteFrom('list_entries').where('kind', '=', 'white').execute();
    const back = await upload('white', file, ct);
    t.equal(back.status, 200, ct);
    t.match(back.body, { added: 3, duplicates: 0, invalidCount: 0 }, ct);
    t.same(await pick(), original, `${ct}: the same entries after the round trip`);
    const again = await upload('white', file, ct);
    t.match(again.body, { added: 0, duplicates: 3 }, `${ct}: re-importing an export is all duplicates`);
  }

  // the black list: 50,000+ rows stream out; re-importing the export changes nothing
  const n = await count('black');
  t.ok(n > 50_000, `${n} black entries`);
  const started = Date.now();
  const big = await app.inject({ method: 'GET', url: '/api/v1/lists/black/export', headers: { authorization: `Bearer ${tokens.admin}` } });
  t.equal(big.statusCode, 200);
  t.equal(big.body.trimEnd().split('\r\n').length, n + 1);
  t.equal(big.headers['x-total-count'], String(n));
  t.ok(Date.now() - started < 15_000, `exported in ${Date.now() - started} ms`);
  const re = await upload('black', big.rawPayload, 'text/csv', 'mode=best-effort');
  t.match(re.body, { added: 0, duplicates: n, invalidCount: 0 });
  t.equal(await count('black'), n);

  t.equal((await api('GET', '/api/v1/lists/black/export?format=xml', tokens.admin)).status, 400);
  const exports = await auditRows('list.export');
  t.ok(exports.some((a) => a.target === 'white:export' && a.actor_role === 'auditor' && a.details.rows === 3 && a.details.format === 'csv'), 'every export is audited, with its size');
  t.ok(exports.some((a) => a.target === 'black:export' && a.details.rows === n));
});

t.test('OpenAPI describes the list routes', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  for (const p of ['/api/v1/lists/{kind}/entries', '/api/v1/lists/{kind}/entries/{number}', '/api/v1/lists/{kind}/import', '/api/v1/lists/{kind}/imports/{importId}', '/api/v1/lists/{kind}/imports/{importId}/apply', '/api/v1/lists/{kind}/export']) {
    t.ok(doc.body.paths[p], p);
  }
  const imp = doc.body.paths['/api/v1/lists/{kind}/import'].post;
  t.ok(imp.requestBody.content['text/csv'], 'the import documents its media types');
  t.ok(imp.requestBody.content['application/vnd.openxmlformats-officedocument.spreadsheetml.sheet']);
  t.ok(imp.responses['422']);
});
