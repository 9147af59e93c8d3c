import t from 'tap';
import { Waiters } from '../../src/calls/waiters.js';
import { retryWrite } from '../../src/shared/retry.js';

t.test('a wait resolves on the wake that makes its check true, and only then', async (t) => {
  const w = new Waiters();
  let digit: string | undefined;
  const p = w.waitFor(() => digit, 5000);
  w.wake(); // nothing yet
  digit = '5';
  w.wake();
  t.equal(await p, '5');
});

t.test('a wait whose check is already true resolves at once; a wait nobody wakes times out', async (t) => {
  const w = new Waiters();
  t.equal(await w.waitFor(() => 'now', 10), 'now');
  t.equal(await w.waitFor(() => undefined, 20), 'timeout');
});

t.test('a record write is retried, then given up and reported, never thrown', async (t) => {
  let calls = 0;
  await retryWrite(async () => {
    if (++calls < 2) throw new Error('connection reset');
  }, () => t.fail('not lost'));
  t.equal(calls, 2, 'succeeded on the second try');
  let lost: unknown;
  await retryWrite(async () => {
    throw new Error('database down');
  }, (err) => (lost = err), 2);
  t.match((lost as Error).message, 'database down');
});
