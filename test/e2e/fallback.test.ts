/**
 * When the control plane is not connected, Stasis() fails at once and the dialplan's fallback takes
 * the call: the caller hears an apology and is hung up, instead of ringing into silence.
 * No service runs in this file (each test file stops its own), so the Stasis app has no connection.
 */
import t from 'tap';
import { runSipp } from '../sipp/sipp.js';
import { ariChannels, resetAri, waitFor } from '../helpers/stack.js';

t.test('given no control plane connected, when a citizen dials 12345, then the fallback answers, apologises and hangs up', async (t) => {
  await resetAri();
  const call = await runSipp({
    scenario: 'caller-dtmf-wait-bye',
    remote: '127.0.0.1:5060',
    service: '12345',
    callerNumber: '13900009999',
    vars: { digit: '1', bye_timeout_ms: '20000' },
    timeoutSeconds: 40,
  });
  t.equal(call.succeeded, 1, 'answered (200), then the hotline hung up (BYE) after the apology');
  t.ok(call.callLengthMs.avg > 2000, `the apology was played (${call.callLengthMs.avg} ms)`);
  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 5000, 'no channels'), [], 'nothing left');
});
