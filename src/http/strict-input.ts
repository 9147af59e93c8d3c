/**
 * Input strictness of every API route, enforced once for all routes when they are registered (an onRoute
 * hook in app.ts), so that a future route cannot forget it:
 *
 * - a body, querystring or params schema whose objects let unknown fields through (no `additionalProperties:
 *   false`, at any depth, in every branch of a union) stops the build with an error naming the route;
 * - a route with path parameters must describe them, each with a `pattern`, a `format` or a set of values
 *   (ids never reach a query or a file name unchecked: no `../`, no NUL);
 * - a route without a querystring schema gets an empty strict one (`?anything=` is a 400);
 * - a POST/PUT/PATCH/DELETE route without a body schema gets one that takes no body, `{}` or `null` only;
 * - (checkInput, a preValidation hook) a JSON body value of the wrong type is a 400 although the app's ajv
 *   coerces types (for query strings): "5" is not 5 in a body; a NUL character anywhere is a 400.
 *
 * Only routes under /api/ are concerned (the OpenAPI UI's own routes are not ours).
 */
import type { FastifyRequest, RouteOptions } from 'fastify';
import { badRequest } from '../shared/errors.js';

export class LooseSchemaError extends Error {
  override name = 'LooseSchemaError';
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: Json, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function describesObject(s: Json): boolean {
  const t = s.type;
  return t === 'object' || (Array.isArray(t) && t.includes('object')) || 'properties' in s || 'patternProperties' in s;
}

/** the JSON pointers of the object schemas inside `schema` that accept properties they do not name */
export function looseObjects(schema: unknown, at = '#'): string[] {
  if (!isObj(schema)) return [];
  const out: string[] = [];
  if (describesObject(schema) && schema.additionalProperties !== false) out.push(at);
  const sub = (v: unknown, p: string) => out.push(...looseObjects(v, p));
  for (const key of ['properties', 'patternProperties'] as const) {
    const props = schema[key];
    if (isObj(props)) for (const [name, v] of Object.entries(props)) sub(v, `${at}/${key}/${name}`);
  }
  for (const key of ['anyOf', 'oneOf', 'allOf', 'prefixItems'] as const) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((v, i) => sub(v, `${at}/${key}/${i}`));
  }
  for (const key of ['items', 'additionalItems', 'not', 'if', 'then', 'else', 'additionalProperties', 'contains'] as const) {
    const v = schema[key];
    if (Array.isArray(v)) v.forEach((x, i) => sub(x, `${at}/${key}/${i}`));
    else sub(v, `${at}/${key}`);
  }
  return out;
}

/** a path parameter's schema that constrains its characters (a pattern, a format, or fixed values) */
function constrained(s: unknown): boolean {
  if (!isObj(s)) return false;
  if (typeof s.pattern === 'string' || typeof s.format === 'string' || 'const' in s || Array.isArray(s.enum)) return true;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const list = s[key];
    if (Array.isArray(list) && list.length > 0 && list.every(constrained)) return true;
  }
  return s.type === 'integer' || s.type === 'number' || s.type === 'boolean';
}

const NO_QUERY = { type: 'object', additionalProperties: false, properties: {} } as const;
/** a body that is absent, null or {}: for actions that take no input */
const NO_BODY = { type: 'object', nullable: true, additionalProperties: false, properties: {}, description: 'no body (or an empty object)' } as const;
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** onRoute hook: checks the route's input schemas (throws LooseSchemaError) and fills in the strict defaults */
export function enforceStrictInput(route: RouteOptions): void {
  if (!route.url.startsWith('/api/')) return;
  const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => String(m).toUpperCase());
  const name = `${methods.join(',')} ${route.url}`;
  const schema = (route.schema ??= {}) as Json;

  for (const part of ['body', 'querystring', 'params'] as const) {
    const s = schema[part];
    if (s === undefined) continue;
    const loose = looseObjects(s);
    if (loose.length) {
      throw new LooseSchemaError(`${name}: the ${part} schema lets unknown fields through at ${loose.join(', ')}; add additionalProperties: false`);
    }
  }

  const names = [...route.url.matchAll(/[:*]([A-Za-z0-9_]*)/g)].map((m) => m[1] || '*');
  if (names.length) {
    const params = schema.params;
    if (!isObj(params) || !isObj(params.properties)) throw new LooseSchemaError(`${name}: path parameters need a params schema`);
    const props = params.properties as Json;
    for (const p of names) {
      if (!constrained(props[p])) throw new LooseSchemaError(`${name}: path parameter ${p} needs a pattern, a format or fixed values`);
    }
  }

  if (schema.querystring === undefined) schema.querystring = { ...NO_QUERY };
  if (schema.body === undefined && methods.some((m) => WITH_BODY.has(m))) schema.body = { ...NO_BODY };
}

/** an object value with keys the object schema does not allow */
function foreignKeys(schema: unknown, value: unknown): boolean {
  if (!isObj(schema) || !isObj(value) || schema.additionalProperties !== false) return false;
  const props = isObj(schema.properties) ? schema.properties : {};
  const patterns = isObj(schema.patternProperties) ? Object.keys(schema.patternProperties).map((p) => new RegExp(p, 'u')) : [];
  return Object.keys(value).some((k) => !own(props, k) && !patterns.some((re) => re.test(k)));
}

const jsonType = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);
const fits = (type: string, actual: string) => type === actual || (type === 'number' && actual === 'integer');

export interface TypeMismatch {
  /** JSON pointer into the body, e.g. /skills/0/level */
  instancePath: string;
  expected: string;
  actual: string;
}

/**
 * The first value of a JSON body whose JSON type the schema does not allow, before the validator's type
 * coercion (the app's ajv coerces, which suits query strings): in a body "5" is not 5, true is not "true",
 * and "x" is not ["x"]. Only types are checked here; everything else is the validator's.
 */
export function typeMismatch(schema: unknown, value: unknown, at = ''): TypeMismatch | null {
  if (!isObj(schema)) return null;
  if (value === null && schema.nullable === true) return null;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = schema[key];
    if (Array.isArray(branches) && branches.length > 0) {
      // the branches the value could be meant for: its keys are theirs (ajv would otherwise coerce into one)
      const tried = branches.map((b) => ({ miss: typeMismatch(b, value, at), foreign: foreignKeys(b, value) }));
      if (!tried.some((x) => x.miss === null && !x.foreign)) {
        const candidates = tried.filter((x) => !x.foreign);
        if (candidates.length === 0) return null; // no branch has these keys: the validator names the unknown field
        const deeper = candidates.find((x) => x.miss && x.miss.instancePath !== at);
        return deeper?.miss ?? { instancePath: at, expected: candidates.map((x) => x.miss!.expected).join(' or '), actual: jsonType(value) };
      }
    }
  }
  if (Array.isArray(schema.allOf)) {
    for (const b of schema.allOf) {
      const m = typeMismatch(b, value, at);
      if (m) return m;
    }
  }
  const types = typeof schema.type === 'string' ? [schema.type] : Array.isArray(schema.type) ? (schema.type as string[]) : null;
  const actual = jsonType(value);
  if (types && !types.some((t) => fits(t, actual))) return { instancePath: at, expected: types.join(' or '), actual };
  if (actual === 'object') {
    const v = value as Json;
    const props = isObj(schema.properties) ? schema.properties : {};
    const patterns = isObj(schema.patternProperties) ? Object.entries(schema.patternProperties).map(([p, s]) => [new RegExp(p, 'u'), s] as const) : [];
    for (const [k, x] of Object.entries(v)) {
      const path = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      const sub = own(props, k) ? props[k] : patterns.find(([re]) => re.test(k))?.[1];
      const m = sub === undefined ? null : typeMismatch(sub, x, path);
      if (m) return m;
    }
  }
  if (actual === 'array' && isObj(schema.items)) {
    const list = value as unknown[];
    for (let i = 0; i < list.length; i++) {
      const m = typeMismatch(schema.items, list[i], `${at}/${i}`);
      if (m) return m;
    }
  }
  return null;
}

/** true when a string (or a key) anywhere in the value holds a NUL character, which PostgreSQL text refuses */
export function holdsNul(v: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some((x) => holdsNul(x, depth + 1));
  if (isObj(v) && !Buffer.isBuffer(v)) {
    for (const [k, x] of Object.entries(v)) if (k.includes('\u0000') || holdsNul(x, depth + 1)) return true;
  }
  return false;
}

/**
 * preValidation hook of every route: a NUL character in the query, the path or a JSON body is a 400 (never a
 * database error), and so is a JSON body value of the wrong type (never silently converted). A route that
 * handles its own validation errors (attachValidation) gets the type error as its validationError, with ajv's
 * shape, so it answers with its own codes.
 */
export async function checkInput(req: FastifyRequest): Promise<void> {
  if (holdsNul(req.query) || holdsNul(req.params) || holdsNul(req.body)) {
    throw badRequest('invalid-characters', 'the request holds a NUL character (\\u0000), which is not accepted');
  }
  const schema = (req.routeOptions.schema as Json | undefined)?.body;
  if (schema === undefined || req.body === undefined || Buffer.isBuffer(req.body) || typeof req.body === 'string') return;
  const m = typeMismatch(schema, req.body);
  if (!m) return;
  const message = `body${m.instancePath} must be ${m.expected}, not ${m.actual}`;
  if (req.routeOptions.attachValidation) {
    const err = Object.assign(new Error(message), {
      statusCode: 400,
      validation: [{ instancePath: m.instancePath, schemaPath: '#/type', keyword: 'type', params: { type: m.expected }, message: `must be ${m.expected}` }],
      validationContext: 'body',
    });
    req.validationError = err as unknown as FastifyRequest['validationError'];
    return;
  }
  throw badRequest('invalid-request', message);
}
