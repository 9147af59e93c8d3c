/**
 * Variant A, the baseline: the same call centre in Asterisk's own dialplan, on the same Asterisk.
 *
 * Installed at bench time only, never in config/asterisk (the project's Asterisk does not load app_queue):
 * - queues.conf (bench-only) written into the chroot's /etc/asterisk, app_queue loaded with "module load";
 * - the dialplan added with "dialplan add extension" (in memory: a dialplan reload or a restart drops it):
 *   from-callers gets _9999X. (more specific than the service's _X., so 12345 still goes to Stasis),
 *   which runs the context bench-a: Answer, Background(welcome) + WaitExten(5), 1/2/9/timeout -> Queue().
 * - the agents' PJSIP endpoints are the ones the service would push (run.ts pushes them through ARI).
 * Like B: the call is recorded from the agent's answer (MixMonitor started by Queue's gosub on the agent's
 * channel, option b: only while bridged) and a Read() survey follows when the agent hangs up first.
 * removeVariantA deletes queues.conf; the next restart (scripts/asterisk.sh re-provisions /etc/asterisk) drops the rest.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const A_NUMBER = '99990001';
const ROOT = process.env.HOTLINE_ASTERISK_ROOT ?? path.join(process.env.HOTLINE_CACHE ?? '/var/cache/hotline', 'asterisk-root');
const QUEUES_CONF = path.join(ROOT, 'etc/asterisk/queues.conf');

type Cli = (...args: string[]) => Promise<string>;

export function queuesConf(agentIds: string[]): string {
  return [
    '; written by bench/variant-a.ts for the benchmark only, removed after the run',
    '[general]',
    'persistentmembers=no',
    'shared_lastcall=yes',
    '',
    '[bench-general]',
    'strategy=leastrecent',
    'timeout=15', // like ringSeconds in B
    'retry=1',
    'wrapuptime=0', // like wrapUpSeconds: 0 in B
    'ringinuse=no',
    'joinempty=yes',
    'leavewhenempty=no',
    'announce-frequency=0',
    'periodic-announce-frequency=0',
    'announce-holdtime=no',
    'announce-position=no',
    'musicclass=default',
    'autofill=yes',
    ...agentIds.map((id) => `member => PJSIP/agent${id}`),
    '',
  ].join('\n');
}

const DIALPLAN: Array<[string, string, string]> = [
  // [context, exten,priority, application]
  ['from-callers', '_9999X.,1', 'Goto(bench-a,s,1)'],
  ['bench-a', 's,1', 'Answer()'],
  ['bench-a', 's,2', 'Set(TIMEOUT(digit)=5)'],
  // the shipped main flow's two prompts (config/ivr/main.yaml: welcome, then main-menu), both interruptible
  ['bench-a', 's,3', 'Background(hotline/zh/welcome&hotline/zh/main-menu)'],
  ['bench-a', 's,4', 'WaitExten(5)'],
  // every branch: the queue, recorded from the agent's answer by MixMonitor (B records by a snoop from the same
  // moment), then the survey when the agent hung up first (B: surveyAfterAgent); the caller hanging up ends it
  ...['1', '2', '9', 't'].flatMap((k): Array<[string, string, string]> => [
    ['bench-a', `${k},1`, 'Set(__MIXMON=bench-${UNIQUEID})'],
    ['bench-a', `${k},2`, 'Queue(bench-general,,,,,,bench-rec)'],
    ['bench-a', `${k},3`, 'Read(SCORE,hotline/zh/survey-question,1,,2,5)'],
    ['bench-a', `${k},4`, 'Playback(hotline/zh/survey-thanks)'],
    ['bench-a', `${k},5`, 'Hangup()'],
  ]),
  ['bench-a', 'i,1', 'Playback(hotline/zh/invalid)'],
  ['bench-a', 'i,2', 'Goto(s,3)'],
  // Queue's gosub on the answered call (agent side): the recording of the whole bridged call starts here
  ['bench-rec', 's,1', 'MixMonitor(${MIXMON}.wav,b)'],
  ['bench-rec', 's,2', 'Return()'],
];

export async function installVariantA(agentIds: string[], asterisk: Cli): Promise<void> {
  await writeFile(QUEUES_CONF, queuesConf(agentIds));
  const loaded = await asterisk('cli', 'module show like app_queue');
  if (/app_queue\.so/.test(loaded) && !/0 modules loaded/.test(loaded)) await asterisk('cli', 'module reload app_queue.so');
  else await asterisk('cli', 'module load app_queue.so');
  for (const [context, ext, app] of DIALPLAN) {
    await asterisk('cli', `dialplan add extension ${ext},${app} into ${context} replace`);
  }
  const shown = await asterisk('cli', 'queue show bench-general');
  if (!/bench-general/.test(shown)) throw new Error(`variant A: queue bench-general not loaded: ${shown}`);
  const plan = await asterisk('cli', 'dialplan show bench-a');
  if (!/Queue\(bench-general/.test(plan)) throw new Error(`variant A: dialplan not installed: ${plan}`);
}

export async function removeVariantA(asterisk: Cli): Promise<void> {
  await rm(QUEUES_CONF, { force: true });
  await asterisk('cli', 'dialplan remove extension _9999X.@from-callers').catch(() => '');
}
