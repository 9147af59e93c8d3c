/** Composition root of the process: config -> service -> signals. One clear line and exit 1 when start-up cannot succeed. */
import { ConfigError, loadConfig } from './config/env.js';
import { startService, type Service } from './service.js';
import { createLogger } from './shared/logger.js';
import { IvrConfigError } from './ivr/ivr.config.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hotline: configuration error: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const log = createLogger(config.logLevel, { env: config.nodeEnv });

try {
  let exiting = false;
  let started: Service | undefined;
  const service = await startService(config, log, {
    // another process took the calls over: stop and exit (a supervisor starts this one again, as a standby)
    onSteppedDown: () => {
      if (exiting) return;
      exiting = true;
      if (!started) process.exit(0);
      started.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    },
  });
  started = service;
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'signal received');
    exiting = true;
    service.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
} catch (err) {
  if (err instanceof IvrConfigError) {
    // the operators' IVR files: every problem, one per line, as `npm run ivr:check` prints them
    log.fatal({ problems: err.problems }, 'start-up failed: IVR files have problems');
    process.stderr.write(`hotline: start-up failed: the IVR files in ${config.ivrDir}/ have ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${config.ivrDir}/${p}\n`).join('')}`);
    process.exit(1);
  }
  const message = err instanceof Error ? err.message : String(err);
  log.fatal({ err }, 'start-up failed');
  process.stderr.write(`hotline: start-up failed: ${message}\n`);
  process.exit(1);
}

process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection'));
