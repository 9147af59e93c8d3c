/**
 * config/sms-templates.yaml: the SMS texts operators edit, `<id>: "<text with {placeholders}>"`. Checked as a
 * whole at start (a broken file stops start-up with the problem); re-read when the file changes, a broken
 * version refused while the last good one stays in force.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { parseOperatorYaml, readOperatorFile } from '../shared/yaml.js';
import { badRequest } from '../shared/errors.js';
import { watchPaths } from '../shared/watch.js';

/** longest text the API sends, rendered or as given */
export const SMS_MAX_CHARS = 500;
const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const PLACEHOLDER = /\{([^{}]*)\}/g;
const PARAM_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

export interface SmsTemplate {
  id: string;
  text: string;
  /** the placeholders' names, each once, in order of appearance */
  params: string[];
}

export class SmsTemplatesError extends Error {
  override name = 'SmsTemplatesError';
}

/** parse and check the whole file; throws SmsTemplatesError naming the first problem */
export function parseSmsTemplates(text: string): Map<string, SmsTemplate> {
  const doc = parseOperatorYaml(text, (m) => new SmsTemplatesError(m));
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new SmsTemplatesError('the file must map template ids to texts (id: "text")');
  const out = new Map<string, SmsTemplate>();
  for (const [id, value] of Object.entries(doc)) {
    if (!ID.test(id)) throw new SmsTemplatesError(`"${id}": a template id is lower-case letters, digits and dashes`);
    if (typeof value !== 'string' || value.trim() === '') throw new SmsTemplatesError(`${id}: the text must be a non-empty string`);
    if (value.length > SMS_MAX_CHARS) throw new SmsTemplatesError(`${id}: the text has ${value.length} characters, at most ${SMS_MAX_CHARS}`);
    const params: string[] = [];
    const rest = value.replace(PLACEHOLDER, (_m, name: string) => {
      if (!PARAM_NAME.test(name)) throw new SmsTemplatesError(`${id}: "{${name}}" is not a placeholder (a name of letters, digits and _)`);
      if (!params.includes(name)) params.push(name);
      return '';
    });
    if (/[{}]/.test(rest)) throw new SmsTemplatesError(`${id}: a "{" or "}" that is not part of a {placeholder}`);
    out.set(id, { id, text: value, params });
  }
  if (out.size === 0) throw new SmsTemplatesError('the file has no templates');
  return out;
}

/** the text with every placeholder replaced; a missing or unknown parameter is a 400 naming it */
export function renderTemplate(t: SmsTemplate, params: Record<string, string | number>): string {
  const missing = t.params.find((p) => !Object.hasOwn(params, p));
  if (missing) throw badRequest('missing-param', `template "${t.id}" needs the parameter "${missing}"`, { template: t.id, param: missing });
  const unknown = Object.keys(params).find((p) => !t.params.includes(p));
  if (unknown) throw badRequest('unknown-param', `template "${t.id}" has no parameter "${unknown}" (it has: ${t.params.join(', ') || 'none'})`, { template: t.id, param: unknown });
  return t.text.replace(PLACEHOLDER, (_m, name: string) => String(params[name]));
}

export interface SmsTemplates {
  /** the rendered text of a template; unknown template, missing or unknown parameter: 400 naming it */
  render(id: string, params: Record<string, string | number>): string;
  ids(): string[];
  close(): void;
}

/** loads the file now (throws SmsTemplatesError when it cannot be read or is broken), then follows its changes */
export function createSmsTemplates(file: string, parentLog: Logger, opts: { watch?: boolean } = {}): SmsTemplates {
  const log = parentLog.child({ module: 'sms' });
  let templates = new Map<string, SmsTemplate>();
  let version: string | null = null;

  function load(): void {
    let text: string;
    try {
      text = readOperatorFile(file);
    } catch (err) {
      throw new SmsTemplatesError(`cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
    if (hash === version) return;
    templates = parseSmsTemplates(text);
    version = hash;
    log.info({ file, version, templates: templates.size }, 'SMS templates loaded');
  }

  try {
    load();
  } catch (err) {
    throw new SmsTemplatesError(`${file}: ${(err as Error).message}`);
  }
  const reload = () => {
    try {
      load();
    } catch (err) {
      log.error({ file, error: (err as Error).message }, 'SMS templates file refused; the last good version stays in force');
    }
  };
  const unwatch = opts.watch !== false ? watchPaths([file], reload, log) : () => undefined;

  return {
    render(id, params) {
      const t = templates.get(id);
      if (!t) throw badRequest('unknown-template', `no SMS template "${id}"`, { template: id });
      return renderTemplate(t, params);
    },
    ids: () => [...templates.keys()],
    close: unwatch,
  };
}
