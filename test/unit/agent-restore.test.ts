/** Which state an agent gets back after Redis restarted empty (src/agents/agent-restore.ts restoredState). */
import t from 'tap';
import { restoredState } from '../../src/agents/agent-restore.js';

const row = (to_state: string, reason: string | null = null, call_id: string | null = null) => ({ to_state, reason, call_id });

t.test('states a person chose come back as they were, with their reason', async (t) => {
  t.same(restoredState(row('ready'), false), { state: 'ready', reason: null, callId: null });
  t.same(restoredState(row('not_ready', 'meeting'), false), { state: 'not_ready', reason: 'meeting', callId: null });
  t.same(restoredState(row('on_break', 'lunch'), false), { state: 'on_break', reason: 'lunch', callId: null });
  t.same(restoredState(row('logged_out'), false), { state: 'logged_out', reason: null, callId: null });
});

t.test('an agent never seen in the log is signed out', async (t) => {
  t.same(restoredState(undefined, false), { state: 'logged_out', reason: null, callId: null });
});

t.test('on a call: kept on it while the call is open, ready once it is over', async (t) => {
  t.same(restoredState(row('on_call', null, 'c1'), true), { state: 'on_call', reason: null, callId: 'c1' });
  t.same(restoredState(row('on_call', null, 'c1'), false), { state: 'ready', reason: null, callId: null });
  t.same(restoredState(row('outbound', null, 'c2'), true), { state: 'outbound', reason: null, callId: 'c2' });
  t.same(restoredState(row('on_call', null, null), true), { state: 'ready', reason: null, callId: null }, 'no call id: nothing to keep it on');
});

t.test('states whose timers were in the lost Redis (reserved, wrap-up) become ready', async (t) => {
  t.same(restoredState(row('reserved', null, 'c3'), true), { state: 'ready', reason: null, callId: null });
  t.same(restoredState(row('wrap_up', null, 'c3'), false), { state: 'ready', reason: null, callId: null });
});
