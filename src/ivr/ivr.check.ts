/**
 * npm run ivr:check [-- <config dir>]: what operators run before saving the IVR files. Checks
 * lines.yaml, ivr/*.yaml, prompts/*.yaml and holidays.yaml against the queues file exactly as the
 * service would at a reload. Exit 0 and a one-line summary, or exit 1 and every problem as
 * `file:line: what is wrong`.
 */
import path from 'node:path';
import { readOperatorFile } from '../shared/yaml.js';
import { parseQueues, QueuesConfigError } from '../acd/queues.config.js';
import { IvrConfigError, loadIvrConfig } from './ivr.config.js';

const dir = path.resolve(process.argv[2] ?? process.env.IVR_DIR ?? 'config');
const queuesFile = path.resolve(process.env.QUEUES_FILE ?? path.join(dir, 'queues.yaml'));

let queueIds: Set<string>;
try {
  queueIds = new Set(parseQueues(readOperatorFile(queuesFile)).keys());
} catch (err) {
  const why = err instanceof QueuesConfigError ? err.message : (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  console.error(`${path.relative(process.cwd(), queuesFile)}: ${why}`);
  process.exit(1);
}
try {
  const c = loadIvrConfig(dir, queueIds);
  const langs = [...c.prompts].map(([l, m]) => `${l} ${m.size}`).join(', ');
  console.log(`ok: ${c.lines.size} lines, ${c.flows.size} flows, prompts (${langs}), ${c.holidays.size} holidays, ${queueIds.size} queues`);
} catch (err) {
  if (!(err instanceof IvrConfigError)) throw err;
  for (const p of err.problems) console.error(`${path.relative(process.cwd(), dir) || '.'}/${p}`);
  console.error(`${err.problems.length} problem(s): nothing was changed; fix them before saving`);
  process.exit(1);
}
