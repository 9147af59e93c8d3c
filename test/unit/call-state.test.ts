import t from 'tap';
import { IllegalTransition, dispositionOnEnd, transition } from '../../src/calls/call.state.js';

t.test('the happy path of an answered call', async (t) => {
  let s = transition('arrived', 'ivr');
  s = transition(s, 'queue');
  s = transition(s, 'offer');
  s = transition(s, 'no_answer');
  t.equal(s, 'queued', 'an unanswered offer puts the caller back in the queue');
  s = transition(s, 'offer');
  s = transition(s, 'agent_answered');
  t.equal(s, 'talking');
  t.equal(transition(s, 'end'), 'ended');
});

t.test('transfers: from talking to a queue, to another agent, to a flow and back', async (t) => {
  t.equal(transition('talking', 'queue'), 'queued');
  t.equal(transition('talking', 'offer'), 'ringing');
  t.equal(transition('talking', 'ivr'), 'ivr');
  t.equal(transition('ivr', 'agent_answered'), 'talking', 'back to the same agent after the flow');
  t.equal(transition('queued', 'queue'), 'queued', 'back in line after a transfer target did not answer');
});

t.test('illegal transitions are refused with the states named', async (t) => {
  t.throws(() => transition('arrived', 'agent_answered'), IllegalTransition);
  t.throws(() => transition('ended', 'end'), { message: 'call cannot end while ended' });
  t.throws(() => transition('talking', 'no_answer'), IllegalTransition);
  t.throws(() => transition('ringing', 'ivr'), IllegalTransition);
});

t.test('disposition follows whether an agent answered', async (t) => {
  t.equal(dispositionOnEnd('talking', true), 'answered');
  t.equal(dispositionOnEnd('queued', false), 'abandoned');
  t.equal(dispositionOnEnd('ivr', false), 'abandoned');
});
