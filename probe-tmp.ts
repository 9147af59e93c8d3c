import { runSipp, startSipp } from './test/sipp/sipp.ts';
import { callerScript } from './test/sipp/caller-script.ts';
import { deploymentEnv, spawnService } from './test/helpers/service-process.ts';
import { createReadyAgent, ivrDirWithDirectLines, writeQueuesFile } from './test/helpers/acd.ts';
import { login } from './test/helpers/stack.ts';
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 10, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7401": { name: fault suite, skill: kf }\n');
const env = await deploymentEnv({ QUEUES_FILE: queuesFile, IVR_DIR: ivrDirWithDirectLines(['7401']), FALLBACK_SKILL: 'kf' });
const phone = await startSipp({ scenario: 'agent-answer', localPort: 5419, calls: 5, vars: { ring_ms: '300' } });
let svc = await spawnService('probe', env);
const admin = await login(svc.url);
await createReadyAgent(svc.url, admin, { id: '1759', port: 5419, skills: [{ skill: 'kf', level: 5 }] });
const mode = process.argv[2];
if (mode === 'kill') { await svc.kill9(); svc = await spawnService('probe', env); }
await new Promise((r) => setTimeout(r, 6000));
await svc.stop();
const r = await runSipp({ scenario: callerScript([], 8000), remote: '127.0.0.1:5060', service: '7401', callerNumber: '13900005555', calls: 1, timeoutSeconds: 40 });
const p = await phone.stop(1000);
console.log(mode, 'phone attempted', p.attempted, 'caller', r.succeeded);
