/**
 * /readyz follows Asterisk: 503 naming ARI while Asterisk is stopped, 200 again once it is back,
 * with the same service process (the adapter reconnects by itself).
 */
import t from 'tap';
import { asteriskCtl, getJson, startTestService, waitFor } from '../helpers/stack.js';

const service = await startTestService(t, 'readiness');
// whatever happens below, leave Asterisk running for the next test file
t.teardown(async () => {
  if ((await asteriskCtl('status')).code !== 0) await asteriskCtl('start');
});

t.test('given a ready service, when Asterisk stops and starts again, then /readyz goes 503 and back to 200', async (t) => {
  t.equal((await getJson(service.url, '/readyz')).status, 200, 'ready at first');

  const stopped = await asteriskCtl('stop');
  t.equal(stopped.code, 0, `asterisk stopped: ${stopped.out.trim()}`);
  const down = await waitFor(
    async () => {
      const r = await getJson(service.url, '/readyz');
      return r.status === 503 ? r : undefined;
    },
    20_000,
    '/readyz to report 503',
  );
  t.same(down.body.down, ['ari'], 'names ARI as what is down');
  t.match(down.body, { ari: false, redis: true, postgres: true });
  t.equal((await getJson(service.url, '/healthz')).status, 200, 'the process itself stays alive');

  const started = await asteriskCtl('start');
  t.equal(started.code, 0, `asterisk started: ${started.out.trim().split('\n').at(-1)}`);
  const up = await waitFor(
    async () => {
      const r = await getJson(service.url, '/readyz');
      return r.status === 200 ? r : undefined;
    },
    60_000,
    '/readyz to report 200 again',
  );
  t.match(up.body, { ari: true, redis: true, postgres: true, down: [] });
});
