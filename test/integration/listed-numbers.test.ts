/**
 * The listed numbers in memory (src/lists/listed-numbers.ts) against the real PostgreSQL: an unlisted caller
 * costs no query, a listed one is read from PostgreSQL (reason, treatment, expiry), every change made by anyone
 * is seen through the trigger's notification, and while the listening connection is lost PostgreSQL answers.
 */
import { sql } from 'kysely';
import t from 'tap';
import { APPLICATION_NAME, ListedNumbers } from '../../src/lists/listed-numbers.js';
import { testInfra } from '../helpers/app.js';
import { waitFor } from '../helpers/stack.js';

const infra = await testInfra(t, 'listed_numbers');
const { db, log } = infra;
const queries: string[] = [];
const counted = db.withPlugin({ transformQuery: (a) => (queries.push(a.node.kind), a.node), transformResult: async (a) => a.result });

const entry = (kind: 'black' | 'white', number: string, o: { treatment?: 'restrict' | 'queue' | 'priority' | 'skip-menu' | null; expiresAt?: Date | null; reason?: string } = {}) => ({
  kind,
  number,
  reason: o.reason ?? `${kind} test`,
  treatment: o.treatment ?? null,
  expires_at: o.expiresAt ?? null,
  created_by: 'test',
});
await db.insertInto('list_entries').values([entry('black', '13900000001', { treatment: 'restrict' }), entry('white', '13900000002', { treatment: 'priority' })]).execute();

const listed = new ListedNumbers({ db: counted, databaseUrl: infra.databaseUrl, log, reloadDelayMs: 20, retryMs: 1000 });
t.teardown(() => listed.close());
await listed.start();

t.test('given the lists are read, an unlisted caller costs no query; a listed one is read from PostgreSQL', async (t) => {
  t.equal(listed.size, 2, 'both numbers held');
  queries.length = 0;
  t.same(await listed.standingOf('13800000000'), { black: null, white: null });
  t.same(queries, [], 'no query for a number on neither list');
  t.match(await listed.standingOf('13900000001'), { black: { reason: 'black test', treatment: 'restrict' }, white: null });
  t.match(await listed.standingOf('13900000002'), { black: null, white: { treatment: 'priority' } });
  t.same(queries, ['SelectQueryNode', 'SelectQueryNode'], 'listed numbers are read from PostgreSQL');
});

t.test('given anyone changes the lists, then the next calls see it', async (t) => {
  // written through another pool, as another process or psql would
  const other = infra.otherDb();
  await other.insertInto('list_entries').values(entry('black', '13800000000', { reason: 'harassment', treatment: 'queue' })).execute();
  await waitFor(async () => (await listed.standingOf('13800000000')).black ?? undefined, 2000, 'the new entry to count');
  t.match(await listed.standingOf('13800000000'), { black: { reason: 'harassment', treatment: 'queue' } });
  await waitFor(() => listed.size === 3, 2000, 'the set to be read again');

  // an entry that has expired is in the set, but PostgreSQL says it no longer counts
  await other.insertInto('list_entries').values(entry('black', '13800000009', { expiresAt: new Date(Date.now() - 1000) })).execute();
  await waitFor(() => listed.size === 4, 2000, 'the set to be read again');
  t.same(await listed.standingOf('13800000009'), { black: null, white: null }, 'expired: not listed');

  await other.deleteFrom('list_entries').where('number', '=', '13800000000').execute();
  await waitFor(async () => (await listed.standingOf('13800000000')).black === null, 2000, 'the removal to count');
  await waitFor(() => listed.size === 3, 2000, 'the set to be read again');
  queries.length = 0;
  t.same(await listed.standingOf('13800000000'), { black: null, white: null });
  t.same(queries, [], 'unlisted again: no query');

  // a rolled-back change changes nothing (and notifies nothing)
  await other
    .transaction()
    .execute(async (trx) => {
      await trx.insertInto('list_entries').values(entry('black', '13800000007')).execute();
      throw new Error('rollback');
    })
    .catch(() => undefined);
  t.same(await listed.standingOf('13800000007'), { black: null, white: null });

  // truncate empties the set too
  await sql`truncate list_entries`.execute(other);
  await waitFor(() => listed.size === 0, 2000, 'the set to be empty');
  t.same(await listed.standingOf('13900000001'), { black: null, white: null });
});

t.test('given the listening connection is lost, then PostgreSQL answers until it is back, and what changed meanwhile counts', async (t) => {
  // (any other process's listener in this database is cut too: it comes back the same way)
  const killed = await sql<{ ok: boolean }>`select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = ${APPLICATION_NAME} and datname = current_database()`.execute(db);
  t.ok(killed.rows.length >= 1, 'the listening backend terminated');
  await waitFor(() => listed.size === null, 2000, 'the set to be dropped');
  // a change while nobody listens: the next call still sees it (PostgreSQL decides while the set is unknown)
  await db.insertInto('list_entries').values(entry('black', '13700000000', { treatment: 'restrict' })).execute();
  t.match(await listed.standingOf('13700000000'), { black: { treatment: 'restrict' } });
  await waitFor(() => listed.size === 1, 5000, 'listening again and the set read');
  t.match(await listed.standingOf('13700000000'), { black: { treatment: 'restrict' } });
  queries.length = 0;
  t.same(await listed.standingOf('13600000000'), { black: null, white: null });
  t.same(queries, [], 'back in memory');
});

t.test('given more numbers than it may hold, then none are held and PostgreSQL answers every call', async (t) => {
  const small = new ListedNumbers({ db, databaseUrl: infra.databaseUrl, log, maxNumbers: 0 });
  t.teardown(() => small.close());
  await small.start();
  t.equal(small.size, null);
  t.match(await small.standingOf('13700000000'), { black: { treatment: 'restrict' } });
});

t.test('given PostgreSQL cannot be reached, then start() does not throw and every lookup goes to PostgreSQL', async (t) => {
  const url = new URL(infra.databaseUrl);
  url.port = '1';
  const away = new ListedNumbers({ db, databaseUrl: url.toString(), log, retryMs: 10_000 });
  t.teardown(() => away.close());
  await away.start();
  t.equal(away.size, null);
  t.match(await away.standingOf('13700000000'), { black: { treatment: 'restrict' } }, 'the pool still answers');
});
