/**
 * The build-time guard on input schemas (src/http/strict-input.ts): a future /api route whose body, query or
 * params schema lets unknown fields through, or whose path parameter takes any characters, stops the build;
 * routes without a query or body schema get strict empty ones. JSON bodies are type-checked before ajv's
 * coercion.
 */
import Fastify from 'fastify';
import { Type } from '@sinclair/typebox';
import t from 'tap';
import { checkInput, enforceStrictInput, LooseSchemaError, looseObjects, typeMismatch } from '../../src/http/strict-input.js';

async function appWith(register: (app: ReturnType<typeof Fastify>) => void) {
  const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } } });
  app.addHook('onRoute', enforceStrictInput);
  app.addHook('preValidation', checkInput);
  register(app);
  await app.ready();
  return app;
}

t.test('looseObjects finds every object that takes unknown fields, at any depth and in every branch', async (t) => {
  t.same(looseObjects(Type.Object({ a: Type.String() }, { additionalProperties: false })), []);
  t.same(looseObjects(Type.Object({ a: Type.String() })), ['#']);
  t.same(looseObjects(Type.Object({ a: Type.Object({ b: Type.String() }) }, { additionalProperties: false })), ['#/properties/a']);
  t.same(looseObjects(Type.Object({ a: Type.Array(Type.Object({ b: Type.String() })) }, { additionalProperties: false })), ['#/properties/a/items']);
  t.same(looseObjects(Type.Union([Type.Object({ a: Type.String() }, { additionalProperties: false }), Type.Object({ b: Type.String() })])), ['#/anyOf/1']);
  t.same(looseObjects(Type.Record(Type.String(), Type.String())), ['#'], 'a record without additionalProperties: false');
  t.same(looseObjects(Type.Unsafe<Buffer>({ description: 'a file' })), [], 'a raw body is not an object schema');
});

t.test('a route with a loose schema or an unchecked path parameter stops the build', async (t) => {
  const cases: Array<[string, (app: ReturnType<typeof Fastify>) => void, RegExp]> = [
    ['loose body', (app) => app.post('/api/x', { schema: { body: Type.Object({ a: Type.String() }) } }, async () => 'ok'), /POST \/api\/x: the body schema lets unknown fields through at #/],
    ['loose nested body', (app) => app.put('/api/x', { schema: { body: Type.Object({ a: Type.Object({}) }, { additionalProperties: false }) } }, async () => 'ok'), /at #\/properties\/a/],
    ['loose querystring', (app) => app.get('/api/x', { schema: { querystring: Type.Object({ q: Type.String() }) } }, async () => 'ok'), /the querystring schema lets unknown fields through/],
    ['loose params', (app) => app.get('/api/x/:id', { schema: { params: Type.Object({ id: Type.String({ format: 'uuid' }) }) } }, async () => 'ok'), /the params schema/],
    ['no params schema', (app) => app.get('/api/x/:id', async () => 'ok'), /path parameters need a params schema/],
    ['a free-text id', (app) => app.get('/api/x/:id', { schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }, { additionalProperties: false }) } }, async () => 'ok'), /path parameter id needs a pattern/],
  ];
  for (const [what, register, re] of cases) {
    await t.rejects(appWith(register), re, what);
    await t.rejects(appWith(register), LooseSchemaError, what);
  }
  const fine = await appWith((app) => {
    app.get('/healthz', async () => 'ok'); // outside /api: not ours to police
    app.get('/api/ok/:id', { schema: { params: Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false }) } }, async () => 'ok');
  });
  t.equal((await fine.inject('/healthz?x=1')).statusCode, 200);
  await fine.close();
});

t.test('routes without a query or body schema take none', async (t) => {
  const app = await appWith((app) => {
    app.get('/api/list', async () => ({ ok: true }));
    app.post('/api/act', async () => ({ ok: true }));
  });
  t.teardown(() => app.close());
  t.equal((await app.inject('/api/list')).statusCode, 200);
  t.equal((await app.inject('/api/list?debug=1')).statusCode, 400, 'an unknown query field');
  t.equal((await app.inject({ method: 'POST', url: '/api/act' })).statusCode, 200, 'no body');
  t.equal((await app.inject({ method: 'POST', url: '/api/act', payload: {} })).statusCode, 200, 'an empty object');
  t.equal((await app.inject({ method: 'POST', url: '/api/act', payload: { force: true } })).statusCode, 400, 'a field the action does not take');
});

t.test('JSON bodies are type-checked before coercion; NUL characters are refused', async (t) => {
  const Body = Type.Object(
    {
      n: Type.Optional(Type.Integer()),
      s: Type.Optional(Type.String()),
      b: Type.Optional(Type.Boolean()),
      list: Type.Optional(Type.Array(Type.String())),
      target: Type.Optional(Type.Union([Type.Object({ agent: Type.String({ pattern: '^[0-9]{2,16}$' }) }, { additionalProperties: false }), Type.Object({ queue: Type.String() }, { additionalProperties: false })])),
      maybe: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    },
    { additionalProperties: false },
  );
  const app = await appWith((app) => app.post('/api/x', { schema: { body: Body } }, async (req: { body: unknown }) => req.body));
  t.teardown(() => app.close());
  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/api/x', payload: payload as object });
  for (const good of [{ n: 5 }, { s: 'x' }, { b: false }, { list: ['a'] }, { target: { agent: '8001' } }, { target: { queue: 'general' } }, { maybe: null }, { maybe: 'x' }]) {
    t.equal((await post(good)).statusCode, 200, JSON.stringify(good));
  }
  for (const bad of [{ n: '5' }, { n: 5.5 }, { s: 5 }, { s: null }, { s: ['x'] }, { b: 'true' }, { list: 'a' }, { target: { agent: 8001 } }, { maybe: 1 }, { s: 'a\u0000b' }]) {
    const r = await post(bad);
    t.equal(r.statusCode, 400, JSON.stringify(bad));
  }
  t.match((await post({ n: '5' })).json(), { message: 'body/n must be integer, not string' });
  t.match((await post({ target: { agent: 8001 } })).json(), { message: 'body/target/agent must be string, not integer' });
  t.same(typeMismatch(Body, { n: 5, s: 'x' }), null);
  t.same(typeMismatch(Body, { constructor: 1, __proto__: 2 }), null, 'unknown keys are the validator\'s to refuse');
});
