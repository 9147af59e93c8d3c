/**
 * When no control plane is connected, Stasis() fails at once and the dialplan's fallback takes the call
 * instead of dead air: a short notice, then the signed-in agents' ring group (HOTLINE_FALLBACK_DIAL); with
 * nobody in it, the caller leaves a message. The call's facts are left as one AstDB key for the service to
 * record when it is back (the fault suite covers the round trip). No service runs in this file.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { runSipp } from '../sipp/sipp.js';
import { callerScript } from '../sipp/caller-script.js';
import { ARI, ariChannels, resetAri, ROOT, waitFor } from '../helpers/stack.js';

const cli = (command: string) => execFileSync('bash', [`${ROOT}/scripts/asterisk.sh`, 'cli', command]).toString();

t.test('given no control plane and nobody signed in, when a citizen dials 12345, then the fallback answers and takes a message', async (t) => {
  await resetAri();
  const set = await fetch(`${ARI.url}/ari/asterisk/variable?variable=HOTLINE_FALLBACK_DIAL&value=`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` },
  });
  t.equal(set.status, 204, 'the ring group emptied');
  const caller = `1390${String(Date.now()).slice(-7)}`;
  const call = await runSipp({ scenario: callerScript([{ pause: 6000 }, { audio: 'g711a' }], 500), remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, timeoutSeconds: 60 });
  t.equal(call.failed, 0, 'answered, and the caller hung up after speaking');
  t.ok(call.callLengthMs.avg > 10_000, `the caller stayed on the line (${call.callLengthMs.avg} ms)`);
  const entry = await waitFor(() => cli('database show hotline-fallback').split('\n').find((l) => l.includes(`~${caller}~12345~`)), 5000, 'the fallback entry');
  t.match(entry, /~(voicemail|message)~/, `the call left a message (${entry.trim()})`);
  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 5000, 'no channels'), [], 'nothing left');
});
