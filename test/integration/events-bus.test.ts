/**
 * The live event bus (src/events/bus.ts) on the real Redis: the events of a moment go out as one message, in
 * order, to every process's subscribers; a burst is sent without waiting; a process of the version before
 * (one event per message, on the single-event channel) is still heard; what cannot be read is dropped and
 * logged, and the bus goes on.
 */
import t from 'tap';
import { createEventBus, type LiveEvent } from '../../src/events/bus.js';
import { waitFor } from '../helpers/stack.js';
import { testInfra } from '../helpers/app.js';

const infra = await testInfra(t, 'events-bus');
const { redis, keys } = infra;

/** every message on the bus's channels, as Redis carries them */
async function tap(): Promise<Array<{ channel: string; message: string }>> {
  const raw = await infra.subscriber();
  const seen: Array<{ channel: string; message: string }> = [];
  raw.on('message', (channel: string, message: string) => seen.push({ channel, message }));
  await raw.subscribe(keys.eventsBatchChannel(), keys.eventsChannel());
  return seen;
}

const a = await createEventBus({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
const b = await createEventBus({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
t.teardown(async () => {
  await a.close();
  await b.close();
});

t.test("a moment's events: one Redis message, every process gets each event in order", async (t) => {
  const wire = await tap();
  const gotA: LiveEvent[] = [];
  const gotB: LiveEvent[] = [];
  const offA = a.subscribe((e) => gotA.push(e));
  const offB = b.subscribe((e) => gotB.push(e));
  t.teardown(() => {
    offA();
    offB();
  });
  a.publish('call.offered', { callId: 'c1', agentId: '1001' }, { agentId: '1001' });
  a.publish('agent.state', { agentId: '1001', state: 'reserved' }, { agentId: '1001' });
  a.publish('queue.stats', { queues: [] }, { everyone: true });
  await waitFor(async () => (gotA.length === 3 && gotB.length === 3 ? true : undefined), 2000, 'both processes got the three events');
  t.same(
    gotB.map((e) => e.type),
    ['call.offered', 'agent.state', 'queue.stats'],
    'in the order published',
  );
  t.same(gotB[0]!.audience, { agentId: '1001' });
  t.same(gotB[2]!.audience, { everyone: true });
  t.same(gotA, gotB, 'the publishing process hears its own events too (its WebSocket hub delivers them)');
  t.equal(wire.length, 1, 'one message on Redis');
  t.equal(wire[0]!.channel, keys.eventsBatchChannel());
});

t.test('a burst goes out without waiting, in messages of at most 200 events', async (t) => {
  const wire = await tap();
  const got: LiveEvent[] = [];
  const off = b.subscribe((e) => got.push(e));
  t.teardown(off);
  for (let i = 0; i < 450; i++) a.publish('agent.state', { agentId: String(i) }, { supervisors: true });
  await waitFor(async () => (got.length === 450 ? true : undefined), 2000, 'all 450 events');
  t.same(
    got.map((e) => e.data.agentId),
    Array.from({ length: 450 }, (_, i) => String(i)),
    'all of them, in order',
  );
  t.same(
    wire.map((m) => (JSON.parse(m.message) as unknown[]).length),
    [200, 200, 50],
    'three messages',
  );
});

t.test('a process of the version before (one event per message) is heard; unreadable messages are dropped', async (t) => {
  const got: LiveEvent[] = [];
  const off = b.subscribe((e) => got.push(e));
  t.teardown(off);
  const old: LiveEvent = { type: 'call.ended', at: new Date().toISOString(), data: { callId: 'c9' }, audience: { agentId: '1002' } };
  await redis.publish(keys.eventsChannel(), '{not json');
  await redis.publish(keys.eventsBatchChannel(), JSON.stringify({ type: 'call.ended' }));
  await redis.publish(keys.eventsChannel(), JSON.stringify(old));
  a.publish('call.held', { callId: 'c9' }, { agentId: '1002' });
  await waitFor(async () => (got.length === 2 ? true : undefined), 2000, 'the two readable events');
  t.same(got[0], old, 'the single event, as it was sent');
  t.equal(got[1]!.type, 'call.held', 'and the bus goes on');
});

t.test('close() sends what is pending', async (t) => {
  const c = await createEventBus({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
  const got: LiveEvent[] = [];
  const off = b.subscribe((e) => got.push(e));
  t.teardown(off);
  c.publish('break.approved', { agentId: '1003' }, { agentId: '1003' });
  await c.close();
  await waitFor(async () => (got.length === 1 ? true : undefined), 2000, 'the event published just before close');
  t.equal(got[0]!.type, 'break.approved');
});
