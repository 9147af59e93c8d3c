import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import type { MaintenanceState } from './maintenance.js';

const Flag = {
  enabled: Type.Boolean(),
  message: Type.Union([Type.String(), Type.Null()], { description: 'prompt id played instead of the default announcement' }),
  allowVoicemail: Type.Boolean(),
};
const Switch = Type.Object({ ...Flag, updatedBy: Type.String(), updatedAt: Type.String({ format: 'date-time' }) });
const Snapshot = Type.Object({
  global: Type.Union([Switch, Type.Null()], { description: "the API's switch for every line" }),
  lines: Type.Array(Type.Object({ line: Type.String(), ...Switch.properties }), { description: "the API's switches of single lines" }),
  config: Type.Object(
    {
      global: Type.Union([Type.Object(Flag), Type.Null()]),
      lines: Type.Array(Type.Object({ line: Type.String(), ...Flag })),
    },
    { description: 'maintenance switched in lines.yaml' },
  ),
});

const SetBody = Type.Object(
  {
    enabled: Type.Boolean(),
    lines: Type.Optional(
      Type.Array(Type.String({ pattern: '^[0-9]{3,15}$' }), {
        minItems: 1,
        maxItems: 50,
        uniqueItems: true,
        description: 'the dialed line numbers to switch; omitted: every line',
      }),
    ),
    message: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()], { description: 'a prompt id (prompts/zh.yaml); null: the default announcement' })),
    allowVoicemail: Type.Boolean(),
  },
  { additionalProperties: false },
);

/** maintenance mode switched at run time (a line row wins over the global row; lines.yaml can switch it too) */
export const maintenanceRoutes: FastifyPluginAsyncTypebox<{ maintenance: MaintenanceState; guard: Guard }> = async (app, { maintenance, guard }) => {
  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['maintenance'],
        summary: 'the maintenance switches: set through the API, and from lines.yaml',
        security: [{ bearer: [] }],
        response: { 200: Snapshot, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async () => maintenance.snapshot(),
  );

  app.put(
    '/',
    {
      preHandler: guard('supervisor', 'admin'),
      schema: {
        tags: ['maintenance'],
        summary: 'switch maintenance on or off for some lines or every line; takes effect at once in every process',
        security: [{ bearer: [] }],
        body: SetBody,
        response: { 200: Snapshot, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const b = req.body;
      await maintenance.set(
        { enabled: b.enabled, allowVoicemail: b.allowVoicemail, ...(b.lines ? { lines: b.lines } : {}), ...(b.message !== undefined ? { message: b.message } : {}) },
        req.principal!.username,
      );
      return maintenance.snapshot();
    },
  );
};
