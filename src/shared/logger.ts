import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from '../config/env.js';

export type { Logger };

/**
 * Citizens' phone numbers never appear whole in the log. Every line is masked as it is written (pino's
 * streamWrite hook: it sees the final JSON, so messages, error messages, child bindings and nested fields are
 * all covered, whatever logged them):
 * - anywhere in the line: Chinese mobiles (with or without +86/0086/86), fixed lines with their area code
 *   (0898 6xxx xxxx), international numbers in + form;
 * - the values of fields named like a number (caller, callerNumber, number, to, phone, ...): any value with 7
 *   digits or more, e.g. a Hainan local number without its area code.
 * Masked as 138****5678: the first 3 and last 4 digits stay (enough to tell calls apart), the rest become *.
 * Service numbers (110, 12345, 95198, 4009513513 as dialled lines) are short or not personal and stay.
 * `dnis`, `line` and `dialed` are the hotline's own numbers and are not keys masked by name.
 */
export function maskNumber(value: string): string {
  // the digits of URL escapes (%20, %2B) are not the number's
  const DIGIT = /%[0-9A-Fa-f]{2}|\d/g;
  const digits = (value.match(DIGIT) ?? []).filter((d) => d.length === 1).length;
  if (digits < 7) return value;
  let seen = 0;
  return value.replace(DIGIT, (d) => {
    if (d.length > 1) return d;
    seen += 1;
    return seen <= 3 || seen > digits - 4 ? d : '*';
  });
}

/** keys whose value is a citizen's number whatever it looks like */
const NUMBER_KEYS = [
  'caller',
  'callers',
  'callerNumber',
  'caller_number',
  'callerId',
  'callerid',
  'callerIdNumber',
  'number',
  'numbers',
  'to',
  'phone',
  'phones',
  'phoneNumber',
  'msisdn',
  'mobile',
  'citizen',
  'destination_addr',
  'source_addr',
];
// "key":"value", "key":["v", ...] or "key":12345678 (the JSON pino writes: no blanks)
const KEYED = new RegExp(`"(${NUMBER_KEYS.join('|')})":("(?:[^"\\\\]|\\\\.)*"|\\[(?:"(?:[^"\\\\]|\\\\.)*",?)*\\]|\\d+(?![\\d.eE]))`, 'g');
const STRING = /"((?:[^"\\]|\\.)*)"/g;
/** a value that is a phone number in some spelling: digits with + ( ) - . blanks, at least 7 digits; not a date */
const PHONE_LIKE = /^[+(]?[\d\s().-]{7,24}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const maskable = (v: string) => PHONE_LIKE.test(v) && !DATE.test(v);

// inside any string of the line; never inside a longer run of digits, letters or dashed groups (uuids, timestamps, hex)
const FREE_TEXT = new RegExp(
  [
    '(?:\\+?86S|0086S)?1[3-9]\\dS\\d{4}S\\d{4}', // mobiles (138 1234 5678, 138-1234-5678 too)
    '(?:\\+86S|0086S)?0\\d{2,3}S\\d{3,4}S\\d{4}', // fixed lines with their area code
    '\\+\\d{8,15}', // international
  ]
    // S: an optional separator: a blank or a dash, also URL-escaped
    .map((p) => p.replace(/S/g, '(?:[- ]|%20)?'))
    // after a URL escape too (?caller=%2B8613812345678)
    .map((p) => `(?:(?<![0-9A-Za-z*_-])|(?<=%[0-9A-Fa-f]{2}))${p}(?![0-9A-Za-z*_]|-[0-9A-Za-z])`)
    .join('|'),
  'g',
);

/** one log line (JSON) with every citizen number masked; JSON numbers outside number fields are left alone */
export function maskLogLine(line: string): string {
  const keyed = line.replace(KEYED, (whole, key: string, value: string) => {
    if (!value.startsWith('"') && !value.startsWith('[')) return value.length >= 7 ? `"${key}":"${maskNumber(value)}"` : whole;
    return `"${key}":${value.replace(STRING, (q, inner: string) => (maskable(inner) ? `"${maskNumber(inner)}"` : q))}`;
  });
  return keyed.replace(STRING, (q, inner: string) => {
    const masked = inner.replace(FREE_TEXT, maskNumber);
    return masked === inner ? q : `"${masked}"`;
  });
}

/** the options every logger of the service uses (tests build theirs from here too) */
export function loggerOptions(level: LogLevel, base: Record<string, unknown> = {}): LoggerOptions {
  return {
    level,
    base: { service: 'hotline', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'sipPassword', '*.sipPassword', 'sip_password', '*.sip_password', 'req.headers.authorization', 'token', '*.token'], censor: '***' },
    hooks: { streamWrite: maskLogLine },
  };
}

/** stdout is written when this much is waiting (bytes), or LOG_FLUSH_MS after the oldest waiting line */
const LOG_BUFFER_BYTES = 4096;
export const LOG_FLUSH_MS = 200;

/**
 * One JSON line per event; secrets never printed, citizens' numbers masked. Stdout is written asynchronously
 * (a synchronous write per line was ~10 % of the service's CPU under load, docs/benchmarks.md) and in batches: a
 * line waits until 4 KB are waiting or at most 200 ms (each write is a system call on libuv's thread pool, which
 * shares the service's CPU; one per line was ~5 per call). pino flushes what is pending when the process exits,
 * a crash included. A kill -9 may lose the last 200 ms of lines, never a record.
 */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = loggerOptions(level, base);
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS }));
}
