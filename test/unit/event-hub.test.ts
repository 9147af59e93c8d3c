/**
 * The WebSocket hub's rules on fake sockets: who receives what (audiences), the message shape, a slow socket
 * dropped (backpressure), a socket that stops answering pings dropped, a socket whose token ended closed.
 */
import { pino } from 'pino';
import t from 'tap';
import type { Principal } from '../../src/auth/auth.service.js';
import type { Audience, LiveEvent } from '../../src/events/bus.js';
import { CLOSE_TOKEN_ENDED, createEventHub, mayReceive, type HubOptions, type HubSocket } from '../../src/events/hub.js';

class FakeSocket implements HubSocket {
  readyState = 1;
  bufferedAmount = 0;
  sent: any[] = [];
  pings = 0;
  closed: { code?: number; reason?: string } | null = null;
  terminated = false;
  answersPings = true;
  private listeners: Record<string, Array<() => void>> = {};
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  ping() {
    this.pings++;
    if (this.answersPings) queueMicrotask(() => this.emit('pong'));
  }
  close(code?: number, reason?: string) {
    this.closed = { ...(code !== undefined ? { code } : {}), ...(reason !== undefined ? { reason } : {}) };
    this.readyState = 3;
    this.emit('close');
  }
  terminate() {
    this.terminated = true;
    this.readyState = 3;
    this.emit('close');
  }
  on(event: 'pong' | 'close', fn: () => void) {
    (this.listeners[event] ??= []).push(fn);
    return this;
  }
  emit(event: string) {
    for (const fn of this.listeners[event] ?? []) fn();
  }
  types() {
    return this.sent.map((m) => m.type);
  }
}

const who = (role: Principal['role'], agentId: string | null = null): Principal => ({ userId: `u-${role}-${agentId}`, username: `${role}${agentId ?? ''}`, role, agentId });

function hubWith(options: HubOptions = {}, valid: (tokens: string[]) => Set<string> = (x) => new Set(x)) {
  let handler: ((e: LiveEvent) => void) | null = null;
  const hub = createEventHub({
    bus: { subscribe: (h) => ((handler = h), () => (handler = null)) },
    stillValid: async (tokens) => valid(tokens),
    log: pino({ level: 'silent' }),
    options,
  });
  t.teardown(() => hub.close());
  const emit = (type: LiveEvent['type'], audience: Audience, data: Record<string, unknown> = {}) => handler!({ type, at: new Date().toISOString(), data, audience });
  return { hub, emit, subscribed: () => handler !== null };
}

t.test('audiences: an agent sees its own and everyone’s; supervisors and admins all; auditors everyone’s and supervisors’', async (t) => {
  const A = { agentId: 'A' };
  const cases: Array<[Principal, Audience, boolean]> = [
    [who('agent', 'A'), A, true],
    [who('agent', 'B'), A, false],
    [who('agent', 'A'), { everyone: true }, true],
    [who('agent', 'A'), { supervisors: true }, false],
    [who('agent', null), A, false],
    [who('supervisor'), A, true],
    [who('supervisor'), { supervisors: true }, true],
    [who('admin'), A, true],
    [who('auditor'), A, false],
    [who('auditor'), { supervisors: true }, true],
    [who('auditor'), { everyone: true }, true],
  ];
  for (const [p, a, expected] of cases) t.equal(mayReceive(p, a), expected, `${p.role} ${p.agentId ?? '-'} / ${JSON.stringify(a)}`);
});

t.test('delivery: hello first, then {type, at, data} to the sockets allowed, no audience on the wire', async (t) => {
  const { hub, emit } = hubWith();
  const a = new FakeSocket();
  const b = new FakeSocket();
  const sup = new FakeSocket();
  hub.add(a, who('agent', 'A'), 'ta');
  hub.add(b, who('agent', 'B'), 'tb');
  hub.add(sup, who('supervisor'), 'ts');
  t.match(a.sent[0], { type: 'hello', at: String, data: { role: 'agent', agentId: 'A' } });
  t.same(sup.sent[0].data, { role: 'supervisor', agentId: null });

  emit('agent.state', { agentId: 'A' }, { agentId: 'A', state: 'ready' });
  emit('break.requested', { supervisors: true }, { id: 'x' });
  emit('ivr.reload', { everyone: true });
  t.same(a.types(), ['hello', 'agent.state', 'ivr.reload']);
  t.same(b.types(), ['hello', 'ivr.reload'], "B does not get A's event nor the supervisors' one");
  t.same(sup.types(), ['hello', 'agent.state', 'break.requested', 'ivr.reload']);
  t.same(Object.keys(a.sent[1]).sort(), ['at', 'data', 'type'], 'no audience field');
  t.same(a.sent[1].data, { agentId: 'A', state: 'ready' });
  t.equal(hub.size, 3);
});

t.test('backpressure: a socket with more than the limit queued is dropped, the others go on', async (t) => {
  const { hub, emit } = hubWith({ maxBufferedBytes: 1024 * 1024 });
  const slow = new FakeSocket();
  const fast = new FakeSocket();
  hub.add(slow, who('supervisor'), 't1');
  hub.add(fast, who('supervisor'), 't2');
  slow.bufferedAmount = 1024 * 1024 + 1;
  emit('queue.stats', { everyone: true }, { n: 1 });
  t.ok(slow.terminated, 'the slow socket is cut off');
  t.same(slow.types(), ['hello'], 'and got nothing more');
  t.equal(hub.size, 1);
  emit('queue.stats', { everyone: true }, { n: 2 });
  t.same(fast.types(), ['hello', 'queue.stats', 'queue.stats']);
});

t.test('ping: a socket that stops answering is dropped at the next round', async (t) => {
  const { hub } = hubWith({ pingMs: 40 });
  const alive = new FakeSocket();
  const dead = new FakeSocket();
  dead.answersPings = false;
  hub.add(alive, who('agent', 'A'), 't1');
  hub.add(dead, who('agent', 'B'), 't2');
  await new Promise((r) => setTimeout(r, 150));
  t.ok(dead.terminated, 'the silent socket is terminated');
  t.notOk(alive.terminated, 'the answering one stays');
  t.ok(alive.pings >= 2, 'and keeps being pinged');
  t.equal(hub.size, 1);
});

t.test('tokens: a socket whose token ended is closed with 4001', async (t) => {
  let validTokens = new Set(['t1', 't2']);
  const { hub } = hubWith({ tokenCheckMs: 30 }, (tokens) => new Set(tokens.filter((x) => validTokens.has(x))));
  const keep = new FakeSocket();
  const gone = new FakeSocket();
  hub.add(keep, who('agent', 'A'), 't1');
  hub.add(gone, who('agent', 'B'), 't2');
  await new Promise((r) => setTimeout(r, 80));
  t.equal(gone.closed, null, 'open while its token is valid');
  validTokens = new Set(['t1']);
  await new Promise((r) => setTimeout(r, 80));
  t.equal(gone.closed?.code, CLOSE_TOKEN_ENDED);
  t.equal(keep.closed, null);
  t.equal(hub.size, 1);
});

t.test('close: timers stop, sockets are closed, the bus is left', async (t) => {
  const { hub, subscribed } = hubWith();
  const s = new FakeSocket();
  hub.add(s, who('admin'), 't');
  hub.close();
  t.equal(s.closed?.code, 1001);
  t.equal(hub.size, 0);
  t.notOk(subscribed(), 'unsubscribed from the bus');
});
