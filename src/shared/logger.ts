import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/env.js';

export type { Logger };

/** One JSON line per event; secrets never printed. */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: 'hotline', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'req.headers.authorization', 'token'], censor: '***' },
  });
}
