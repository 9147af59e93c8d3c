import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifySchemaValidationError } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest, forbidden } from '../shared/errors.js';
import { Agent, AgentIdParams, AgentList, AgentListQuery, CreateAgentBody, PatchAgentBody, type CreateAgentInput, type PatchAgentInput } from './agents.schemas.js';
import type { AgentsService } from './agents.service.js';

/**
 * A body that fails its schema: 400 with a code naming the part that is wrong (invalid-skill,
 * invalid-phone, ...) rather than the generic invalid-request. The message is ajv's, which names
 * the field and never echoes its value (so no password reaches a response or a log).
 */
function invalidBody(err: Error & { validation?: FastifySchemaValidationError[] }) {
  const first = err.validation?.[0];
  const where = first?.instancePath ?? '';
  const missing = first?.keyword === 'required' ? String((first.params as { missingProperty?: string }).missingProperty ?? '') : '';
  const field = where.split('/')[1] || missing;
  const code =
    { skills: 'invalid-skill', phone: 'invalid-phone', employeeNo: 'invalid-employee-no', password: 'invalid-password', role: 'invalid-role' }[field] ??
    'invalid-request';
  return badRequest(code, err.message);
}

const actorOf = (p: { role: string; username: string }) => `${p.role}:${p.username}`;

export const agentsRoutes: FastifyPluginAsyncTypebox<{ agents: AgentsService; guard: Guard }> = async (app, { agents, guard }) => {
  const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody };

  app.post(
    '/',
    {
      preHandler: guard('admin'),
      attachValidation: true,
      schema: {
        tags: ['agents'],
        summary: 'create an agent: its sign-in account (user name = employee number) and its phone in Asterisk',
        description:
          'One transaction for the agent and its account. The phone is then provisioned in Asterisk through ARI; when Asterisk is unreachable the agent is still created, with `provisioned: false`, and its phone is pushed when ARI reconnects.',
        security: [{ bearer: [] }],
        body: CreateAgentBody,
        response: { 201: Agent, ...errors, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      if (req.validationError) throw invalidBody(req.validationError);
      // cast: the type provider reads `wrapUpSeconds` (a nullable integer, Type.Unsafe) as unknown
      const agent = await agents.create(req.body as CreateAgentInput, actorOf(req.principal!));
      return reply.status(201).send(agent);
    },
  );

  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['agents'],
        summary: 'the agents that are not deleted, by employee number',
        security: [{ bearer: [] }],
        querystring: AgentListQuery,
        response: { 200: AgentList, ...errors },
      },
    },
    async (req) => ({ items: await agents.list(req.query.skill ? { skill: req.query.skill } : {}) }),
  );

  app.get(
    '/:id',
    {
      preHandler: guard('agent', 'supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['agents'],
        summary: 'one agent; an agent may read only itself',
        security: [{ bearer: [] }],
        params: AgentIdParams,
        response: { 200: Agent, ...errors, 404: ErrorBody },
      },
    },
    async (req) => {
      const p = req.principal!;
      if (p.role === 'agent' && p.agentId !== req.params.id) throw forbidden('an agent may read only its own record');
      return agents.get(req.params.id);
    },
  );

  app.patch(
    '/:id',
    {
      preHandler: guard('admin'),
      attachValidation: true,
      schema: {
        tags: ['agents'],
        summary: "change an agent's name, password, role, skills, phone or wrap-up time",
        description: 'A new password ends the sessions signed in with the old one. A phone change is pushed to Asterisk at once (`provisioned` tells whether that worked).',
        security: [{ bearer: [] }],
        params: AgentIdParams,
        body: PatchAgentBody,
        response: { 200: Agent, ...errors, 404: ErrorBody },
      },
    },
    async (req) => {
      if (req.validationError) throw invalidBody(req.validationError);
      return agents.update(req.params.id, req.body as PatchAgentInput, actorOf(req.principal!));
    },
  );

  app.delete(
    '/:id',
    {
      preHandler: guard('admin'),
      schema: {
        tags: ['agents'],
        summary: 'delete an agent: kept for call records, its account disabled, its phone removed from Asterisk',
        security: [{ bearer: [] }],
        params: AgentIdParams,
        response: { 204: Type.Null(), ...errors, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      await agents.remove(req.params.id, actorOf(req.principal!));
      return reply.status(204).send(null);
    },
  );
};
