/**
 * The audit trail (src/audit/audit.ts, audit.routes.ts; migration 0009): rows written with who, what, on what,
 * from where; the list filters and paging of GET /api/v1/audit; roles; the append-only trigger (UPDATE, DELETE
 * and TRUNCATE refused by PostgreSQL); the SHA-256 chain (verify() ok when intact, the first bad row named when
 * a row is edited or removed, as the superuser could do with the trigger off); concurrent writers from two pools
 * (two processes) still forming one chain.
 */
import { sql } from 'kysely';
import t from 'tap';
import { AuditLog, chainHash, type AuditEntry, type AuditRecord } from '../../src/audit/audit.js';
import type { AuditLogRow } from '../../src/db/database.js';
import type { Db } from '../../src/db/db.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

const GENESIS = '0'.repeat(64);
const infra = await testInfra(t, 'audit');
const { db } = infra;
const audit = new AuditLog(db);
const { api, tokens } = await buildTestApp(t, infra, { audit });
const userOf = async (role: 'supervisor' | 'admin') => (await db.selectFrom('users').select('username').where('role', '=', role).executeTakeFirstOrThrow()).username;

/** every row of the table, by seq */
const allRows = (d: Db = db): Promise<AuditLogRow[]> => d.selectFrom('audit_log').selectAll().orderBy('seq').execute();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** as the superuser: the row trigger off for one change (one transaction), back on after */
async function tamper(fn: (trx: Db) => Promise<unknown>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`alter table audit_log disable trigger audit_log_no_update`.execute(trx);
    await fn(trx as unknown as Db);
    await sql`alter table audit_log enable trigger audit_log_no_update`.execute(trx);
  });
}

// the seed: a few actors, action families and targets, a couple of milliseconds apart so `at` orders them
const SEED: AuditEntry[] = [
  { actor: 'sup-wang', actorRole: 'supervisor', action: 'monitor.listen', target: 'call-1', address: '10.0.0.5', details: { queue: 'general' } },
  { actor: 'sup-wang', actorRole: 'supervisor', action: 'monitor.barge', target: 'call-1', address: '10.0.0.5' },
  { actor: 'sup-li', actorRole: 'supervisor', action: 'monitor.whisper', target: 'call-2', address: '10.0.0.6', details: { agent: '8001' } },
  { actor: 'sup-li', actorRole: 'supervisor', action: 'recording.download', target: 'rec-9', address: '10.0.0.6' },
  { actor: 'adm-zhao', actorRole: 'admin', action: 'recording.play', target: 'rec-9', address: null },
  { actor: 'adm-zhao', actorRole: 'admin', action: 'agent.force-state', target: '8001', details: { from: 'busy', to: 'offline' } },
  { actor: 'system', actorRole: 'system', action: 'recording.purge', target: null, details: { removed: 12 } },
  { actor: 'sup-wang', actorRole: 'supervisor', action: 'monitorx.listen', target: 'call-3' }, // not of the monitor.* family
  { actor: 'sup-wang', actorRole: 'supervisor', action: 'monitor', target: 'call-3' }, // nor this one
  { actor: 'sup-li', actorRole: 'supervisor', action: 'monitor.listen', target: 'call-4', address: '10.0.0.6' },
  // awkward content the hash must survive a round trip through jsonb with: key order, nesting, unicode, numbers
  {
    actor: '王主管',
    actorRole: 'supervisor',
    action: 'list.add',
    target: 'black:+8613800138000',
    address: '2001:db8::1',
    details: { z: 1, a: { d: [1, { y: 2, x: 'é' }], c: null }, reason: '骚扰 "坐席" <script>', big: 1.2345678901234568e29, tiny: 1e-7, frac: 0.1 + 0.2, neg: -5, t: true, empty: {}, list: [], skipped: undefined },
  },
];
const seeded: AuditRecord[] = [];
for (const e of SEED) {
  seeded.push(await audit.record(e));
  await sleep(3);
}

t.test('record(): a row with who, role, what, on what, from where and details, chained to the one before', async (t) => {
  const rows = await allRows();
  t.equal(rows.length, SEED.length);
  t.equal(rows[0]!.prev_hash, GENESIS, 'the first row links to the genesis hash');
  SEED.forEach((e, i) => {
    const r = rows[i]!;
    const rec = seeded[i]!;
    t.equal(Number(r.seq), rec.seq, `${i}: seq returned`);
    t.match(r, { actor: e.actor, actor_role: e.actorRole, action: e.action, target: e.target ?? null, address: e.address ?? null }, `${i}: columns`);
    t.same(r.details, JSON.parse(JSON.stringify(e.details ?? {})), `${i}: details (jsonb)`);
    t.equal(r.hash, rec.hash, `${i}: hash returned`);
    t.match(r.hash, /^[0-9a-f]{64}$/);
    if (i > 0) t.equal(r.prev_hash, rows[i - 1]!.hash, `${i}: links to the row before`);
    t.equal(r.hash, chainHash(r.prev_hash, { at: r.at, actor: r.actor, actorRole: r.actor_role, action: r.action, target: r.target, details: r.details, address: r.address }), `${i}: hash of its content`);
    t.equal(r.at.getTime(), rec.at.getTime(), `${i}: at stored to the millisecond`);
  });
  t.same(rows[1]!.details, {}, 'no details: an empty object');
  t.same(seeded[10]!.details.skipped, undefined, 'undefined keys dropped');
  t.notOk('skipped' in rows[10]!.details);

  t.same(await audit.verify(), { ok: true, rows: SEED.length, brokenAt: null }, 'the awkward details round-trip through jsonb: the chain verifies');
});

t.test('a route writes the signed-in user, role and client address', async (t) => {
  const add = await api('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '13900139000', reason: '恶意来电', treatment: 'restrict' });
  t.equal(add.status, 201);
  const before = await allRows();
  const last = before.at(-1)!;
  t.match(last, { actor: await userOf('supervisor'), actor_role: 'supervisor', action: 'list.add', target: 'black:13900139000', address: '127.0.0.1' });
  t.match(last.details, { reason: '恶意来电', treatment: 'restrict' });
  const r = await api('GET', `/api/v1/audit?target=${encodeURIComponent('black:13900139000')}`, tokens.auditor);
  t.equal(r.status, 200);
  t.equal(r.body.items.length, 1);
  t.same(r.body.items[0], {
    seq: Number(last.seq),
    at: last.at.toISOString(),
    actor: last.actor,
    actorRole: 'supervisor',
    action: 'list.add',
    target: 'black:13900139000',
    details: last.details,
    address: '127.0.0.1',
    hash: last.hash,
  });
  t.same(await audit.verify(), { ok: true, rows: SEED.length + 1, brokenAt: null });
});

t.test('GET /api/v1/audit: newest first; from/to, actor, action (exact and family.*), target', async (t) => {
  const everything = (await allRows()).reverse(); // newest first, as the API lists
  const list = async (q: string) => {
    const r = await api('GET', `/api/v1/audit?${q}`, tokens.supervisor);
    t.equal(r.status, 200, q);
    t.equal(r.body.nextCursor, null, `${q}: one page`);
    return r.body.items.map((i: { seq: number }) => i.seq);
  };
  const expect = (pred: (r: AuditLogRow) => boolean) => everything.filter(pred).map((r) => Number(r.seq));

  t.same(await list(''), expect(() => true), 'all, newest first');
  t.same(await list('actor=sup-wang'), expect((r) => r.actor === 'sup-wang'));
  t.equal((await list('actor=sup-wang')).length, 4);
  t.same(await list(`actor=${encodeURIComponent('王主管')}`), [seeded[10]!.seq], 'a Chinese user name');
  t.same(await list('actor=nobody'), [], 'no such actor');
  t.same(await list('action=monitor.listen'), [seeded[9]!.seq, seeded[0]!.seq], 'exact action');
  t.same(await list('action=monitor.*'), [seeded[9]!.seq, seeded[2]!.seq, seeded[1]!.seq, seeded[0]!.seq], 'the monitor family, not monitorx.listen nor monitor');
  t.same(await list('action=monitor'), [seeded[8]!.seq], 'action without a dot is exact');
  t.same(await list('action=recording.*'), [seeded[6]!.seq, seeded[4]!.seq, seeded[3]!.seq]);
  t.same(await list('action=recording.*&actor=adm-zhao'), [seeded[4]!.seq], 'filters combine');
  t.same(await list('target=rec-9'), [seeded[4]!.seq, seeded[3]!.seq]);
  t.same(await list('target=call-1&action=monitor.barge'), [seeded[1]!.seq]);

  // time: from inclusive, to exclusive (the seed is milliseconds apart)
  const at = (i: number) => seeded[i]!.at.toISOString();
  t.ok(seeded.every((s, i) => i === 0 || s.at > seeded[i - 1]!.at), 'the seed rows are in time order');
  t.same(await list(`from=${at(2)}&to=${at(5)}`), [seeded[4]!.seq, seeded[3]!.seq, seeded[2]!.seq], 'from inclusive, to exclusive');
  t.same(await list(`from=${at(9)}&action=monitor.*`), [seeded[9]!.seq]);
  t.same(await list(`to=${at(1)}`), [seeded[0]!.seq]);
  t.same(await list(`from=${new Date(Date.now() + 3600_000).toISOString()}`), [], 'nothing in the future');

  // the family's LIKE escapes its wildcards (the route's pattern cannot send them; the class takes any)
  const under = await audit.record({ actor: 'system', actorRole: 'system', action: 'a_b.x' });
  const other = await audit.record({ actor: 'system', actorRole: 'system', action: 'axb.x' });
  const fam = await audit.list({ action: 'a_b.*', limit: 10 });
  t.same(fam.items.map((i) => i.seq), [under.seq], '`_` is no wildcard in a family');
  t.same((await audit.list({ action: 'a%.*', limit: 10 })).items, [], '`%` is no wildcard either');
  t.same((await audit.list({ action: 'axb.*', limit: 10 })).items.map((i) => i.seq), [other.seq]);
});

t.test('paging: nextCursor walks back in time, pages do not overlap, no empty last page', async (t) => {
  const all = (await allRows()).reverse().map((r) => Number(r.seq));
  t.ok(all.length >= 12, `${all.length} rows`);
  for (const limit of [1, 3, 5, all.length, all.length + 1]) {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await api('GET', `/api/v1/audit?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, tokens.admin);
      t.equal(r.status, 200);
      t.ok(r.body.items.length > 0 && r.body.items.length <= limit, `limit ${limit}: a non-empty page of at most ${limit}`);
      seen.push(...r.body.items.map((i: { seq: number }) => i.seq));
      cursor = r.body.nextCursor;
      if (cursor !== null) t.equal(cursor, String(seen.at(-1)), 'the cursor is the last seq of the page');
      pages++;
    } while (cursor && pages < 100);
    t.same(seen, all, `limit ${limit}: every row once, newest first`);
    t.equal(pages, Math.ceil(all.length / limit), `limit ${limit}: ${pages} pages`);
  }
  // paging within a filter
  const p1 = await api('GET', '/api/v1/audit?action=monitor.*&limit=3', tokens.auditor);
  t.same(p1.body.items.map((i: { seq: number }) => i.seq), [seeded[9]!.seq, seeded[2]!.seq, seeded[1]!.seq]);
  t.equal(p1.body.nextCursor, String(seeded[1]!.seq));
  const p2 = await api('GET', `/api/v1/audit?action=monitor.*&limit=3&cursor=${p1.body.nextCursor}`, tokens.auditor);
  t.same(p2.body.items.map((i: { seq: number }) => i.seq), [seeded[0]!.seq]);
  t.equal(p2.body.nextCursor, null);
});

t.test('bad queries are 400 with the error shape', async (t) => {
  const at = seeded[3]!.at.toISOString();
  for (const q of [`from=${at}&to=${at}`, 'from=yesterday', 'action=Monitor.listen', 'action=monitor.*.*', 'action=monitor%25', 'limit=0', 'limit=501', 'cursor=abc', 'cursor=-1', 'colour=red', 'actor=']) {
    const r = await api('GET', `/api/v1/audit?${q}`, tokens.supervisor);
    t.equal(r.status, 400, q);
    t.type(r.body.error?.code, 'string', q);
  }
  t.equal((await api('GET', `/api/v1/audit?from=${at}&to=${at}`, tokens.supervisor)).body.error.code, 'invalid-range');
  t.equal((await api('GET', `/api/v1/audit?limit=500`, tokens.supervisor)).status, 200, 'limit 500 is allowed');
});

t.test('roles: supervisor, admin and auditor list; only admin and auditor verify; an agent gets 403; no token 401', async (t) => {
  for (const role of ['supervisor', 'admin', 'auditor'] as const) t.equal((await api('GET', '/api/v1/audit', tokens[role])).status, 200, `${role} lists`);
  for (const role of ['admin', 'auditor'] as const) {
    const r = await api('GET', '/api/v1/audit/verify', tokens[role]);
    t.equal(r.status, 200, `${role} verifies`);
    t.equal(r.body.ok, true);
  }
  for (const [role, path] of [['agent', '/api/v1/audit'], ['agent', '/api/v1/audit/verify'], ['supervisor', '/api/v1/audit/verify']] as const) {
    const r = await api('GET', path, tokens[role]);
    t.equal(r.status, 403, `${role} ${path}`);
    t.equal(r.body.error.code, 'forbidden');
  }
  for (const path of ['/api/v1/audit', '/api/v1/audit/verify']) t.equal((await api('GET', path, null)).status, 401, path);
});

t.test('append-only: UPDATE, DELETE and TRUNCATE are refused by the trigger, even for the superuser; rows unchanged', async (t) => {
  const before = await allRows();
  const mid = String(before[3]!.seq);
  const refused = (op: string) => ({ code: 'P0001', message: `audit_log is append-only (${op} refused)` });
  await t.rejects(sql`update audit_log set details = '{"edited":true}'::jsonb where seq = ${mid}`.execute(db), refused('UPDATE'), 'UPDATE of one row');
  await t.rejects(sql`update audit_log set actor = 'someone-else'`.execute(db), refused('UPDATE'), 'UPDATE of every row');
  await t.rejects(db.updateTable('audit_log').set({ hash: GENESIS }).where('seq', '=', mid).execute(), refused('UPDATE'), 'UPDATE through Kysely');
  await t.rejects(sql`delete from audit_log where seq = ${mid}`.execute(db), refused('DELETE'), 'DELETE of one row');
  await t.rejects(db.deleteFrom('audit_log').execute(), refused('DELETE'), 'DELETE of every row');
  await t.rejects(sql`truncate audit_log`.execute(db), refused('TRUNCATE'), 'TRUNCATE');
  await t.rejects(sql`truncate audit_log restart identity cascade`.execute(infra.otherDb()), refused('TRUNCATE'), 'TRUNCATE from another pool');
  t.same(await allRows(), before, 'every row as it was');
  t.same(await audit.verify(), { ok: true, rows: before.length, brokenAt: null });
  const triggers = await sql<{ tgname: string; tgenabled: string }>`select tgname, tgenabled from pg_trigger where tgrelid = 'audit_log'::regclass and not tgisinternal order by tgname`.execute(db);
  t.same(triggers.rows, [{ tgname: 'audit_log_no_truncate', tgenabled: 'O' }, { tgname: 'audit_log_no_update', tgenabled: 'O' }], 'both triggers there and enabled');
});

t.test('tampering: an edited row, a re-hashed edit and a removed row are found by verify() and the route', async (t) => {
  const rows = await allRows();
  const n = rows.length;
  const intact = await audit.verify();
  t.same(intact, { ok: true, rows: n, brokenAt: null }, 'intact before');
  const viaRoute = async () => (await api('GET', '/api/v1/audit/verify', tokens.auditor)).body;

  // 1. one row's details changed (the trigger off for the moment, as the superuser)
  const victim = rows[4]!;
  await tamper((trx) => sql`update audit_log set details = details || '{"note":"harmless"}'::jsonb where seq = ${victim.seq}`.execute(trx));
  t.same(await audit.verify(), { ok: false, rows: 4, brokenAt: Number(victim.seq) }, 'the edited row is named');
  t.same(await viaRoute(), { ok: false, rows: 4, brokenAt: Number(victim.seq) }, 'the route says the same');
  t.equal((await api('GET', '/api/v1/audit/verify', tokens.admin)).body.brokenAt, Number(victim.seq));
  await tamper((trx) => sql`update audit_log set details = ${JSON.stringify(victim.details)}::jsonb where seq = ${victim.seq}`.execute(trx));
  t.same(await audit.verify(), { ok: true, rows: n, brokenAt: null }, 'whole again once restored');

  // 2. other columns: the actor, the time
  for (const [col, set] of [['actor', sql`actor = 'innocent'`], ['at', sql`at = at + interval '1 millisecond'`], ['address', sql`address = null`], ['target', sql`target = 'call-x'`]] as const) {
    const r = rows[2]!;
    await tamper((trx) => sql`update audit_log set ${set} where seq = ${r.seq}`.execute(trx));
    t.same(await audit.verify(), { ok: false, rows: 2, brokenAt: Number(r.seq) }, `${col} changed: found`);
    await tamper((trx) => sql`update audit_log set actor = ${r.actor}, at = ${r.at}, address = ${r.address}, target = ${r.target} where seq = ${r.seq}`.execute(trx));
    t.same(await audit.verify(), { ok: true, rows: n, brokenAt: null }, `${col} restored`);
  }

  // 3. an edit with its own hash recomputed: the next row's link no longer matches
  const edited = rows[6]!;
  const forged = chainHash(edited.prev_hash, { at: edited.at, actor: 'nobody', actorRole: edited.actor_role, action: edited.action, target: edited.target, details: edited.details, address: edited.address });
  await tamper((trx) => sql`update audit_log set actor = 'nobody', hash = ${forged} where seq = ${edited.seq}`.execute(trx));
  t.same(await audit.verify(), { ok: false, rows: 7, brokenAt: Number(rows[7]!.seq) }, 'a re-hashed edit breaks the next link');
  await tamper((trx) => sql`update audit_log set actor = ${edited.actor}, hash = ${edited.hash} where seq = ${edited.seq}`.execute(trx));
  t.same(await audit.verify(), { ok: true, rows: n, brokenAt: null });

  // 4. a middle row removed: the row after it no longer links
  const gone = rows[5]!;
  await tamper((trx) => sql`delete from audit_log where seq = ${gone.seq}`.execute(trx));
  t.equal((await allRows()).length, n - 1, 'the row is gone');
  t.same(await audit.verify(), { ok: false, rows: 5, brokenAt: Number(rows[6]!.seq) }, 'the row after the removed one is named');
  t.same(await viaRoute(), { ok: false, rows: 5, brokenAt: Number(rows[6]!.seq) }, 'the route says the same');
  // put it back as it was (an insert is not refused by the trigger)
  await db.insertInto('audit_log').values({ ...gone, details: JSON.stringify(gone.details) }).execute();
  t.same(await audit.verify(), { ok: true, rows: n, brokenAt: null }, 'whole again once put back');

  // 5. the first row removed: the new first row does not start at the genesis
  const first = rows[0]!;
  await tamper((trx) => sql`delete from audit_log where seq = ${first.seq}`.execute(trx));
  t.same(await audit.verify(), { ok: false, rows: 0, brokenAt: Number(rows[1]!.seq) }, 'the first row removed');
  await db.insertInto('audit_log').values({ ...first, details: JSON.stringify(first.details) }).execute();
  t.same(await audit.verify(), { ok: true, rows: n, brokenAt: null });

  // the table after all that: as before, the triggers on again
  t.same(await allRows(), rows);
  await t.rejects(sql`delete from audit_log where seq = ${first.seq}`.execute(db), { code: 'P0001' }, 'the trigger is back on');
});

t.test('concurrent writers: 50 record() calls in parallel from two pools form one valid chain', async (t) => {
  // a schema of its own: the chain starts empty here
  const race = await testInfra(t, 'auditrace');
  const a = new AuditLog(race.db);
  const b = new AuditLog(race.otherDb());
  const written = await Promise.all(
    Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).record({ actor: `writer-${i % 2 === 0 ? 'a' : 'b'}`, actorRole: 'system', action: 'race.write', target: `t-${i}`, details: { i } })),
  );
  const rows = await allRows(race.db);
  t.equal(rows.length, 50, '50 rows');
  t.same(await a.verify(), { ok: true, rows: 50, brokenAt: null }, 'verify ok (pool a)');
  t.same(await b.verify(), { ok: true, rows: 50, brokenAt: null }, 'verify ok (pool b)');
  t.equal(rows[0]!.prev_hash, GENESIS);
  let links = 0;
  for (let i = 1; i < rows.length; i++) if (rows[i]!.prev_hash === rows[i - 1]!.hash) links++;
  t.equal(links, 49, 'each row links to the one before');
  t.equal(new Set(rows.map((r) => r.hash)).size, 50, 'no two rows share a hash (no fork)');
  t.equal(new Set(rows.map((r) => r.prev_hash)).size, 50, 'no two rows share a predecessor (no fork)');
  t.same(
    rows.map((r) => (r.details as { i: number }).i).sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
    'every write there once',
  );
  const seqs = rows.map((r) => Number(r.seq));
  t.same(seqs, Array.from({ length: 50 }, (_, i) => seqs[0]! + i), 'consecutive seqs');
  t.same(written.map((w) => w.seq).sort((x, y) => x - y), seqs, 'record() returned each row');
  t.same(written.map((w) => w.hash).sort(), rows.map((r) => r.hash).sort());
  const api2 = (await a.list({ action: 'race.*', limit: 500 })).items;
  t.equal(api2.length, 50);
});
