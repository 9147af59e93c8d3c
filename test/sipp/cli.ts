/**
 * Run one of the SIPp scenarios by hand (they are templates: the wrapper fills in {{vars}}):
 *   npx tsx test/sipp/cli.ts agent-answer --port 5091 --calls 1
 *   npx tsx test/sipp/cli.ts caller-dtmf --remote 127.0.0.1:5060 --service 12345 --caller 13800138000 --var digit=1
 * Prints the outcome and where SIPp's files are.
 */
import { parseArgs } from 'node:util';
import { runSipp } from './sipp.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    remote: { type: 'string' },
    service: { type: 'string' },
    port: { type: 'string' },
    calls: { type: 'string', default: '1' },
    caller: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    var: { type: 'string', multiple: true, default: [] },
  },
});
const scenario = positionals[0];
if (!scenario) {
  process.stderr.write('usage: npx tsx test/sipp/cli.ts <scenario> [--remote host:port] [--service 12345] [--port N] [--calls N] [--caller N] [--var k=v]...\n');
  process.exit(2);
}
const vars = Object.fromEntries((values.var ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const r = await runSipp({
  scenario,
  ...(values.remote ? { remote: values.remote } : {}),
  ...(values.service ? { service: values.service } : {}),
  ...(values.port ? { localPort: Number(values.port) } : {}),
  ...(values.caller ? { callerNumber: values.caller } : {}),
  calls: Number(values.calls),
  timeoutSeconds: Number(values.timeout),
  vars,
});
process.stdout.write(`${scenario}: ${r.succeeded} succeeded, ${r.failed} failed of ${r.attempted}; files in ${r.artefactsDir}\n`);
process.exit(r.failed > 0 || r.succeeded === 0 ? 1 : 0);
