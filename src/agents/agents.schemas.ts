import { Type, type Static } from '@sinclair/typebox';

/** an employee number: the agent's id everywhere (call records, the ACD, PJSIP/agent<employeeNo>) */
export const EmployeeNo = Type.String({ pattern: '^[A-Za-z0-9]{1,16}$', description: 'employee number, 1-16 letters or digits' });

export const Skill = Type.Object(
  {
    skill: Type.String({ pattern: '^[a-z0-9_-]{1,32}$', description: 'skill name, as queues ask for it' }),
    level: Type.Integer({ minimum: 1, maximum: 9, description: '1 (basic) .. 9 (expert)' }),
  },
  { additionalProperties: false },
);
/** no skill may appear twice (checked by the service: JSON Schema cannot say "unique by key") */
export const Skills = Type.Array(Skill, { maxItems: 64 });

export const AgentRole = Type.Union([Type.Literal('agent'), Type.Literal('supervisor'), Type.Literal('admin')], {
  description: 'the role of the agent\'s sign-in account (an auditor has no phone and is not an agent)',
});

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const Password = Type.String({ minLength: 8, maxLength: 256, description: 'sign-in password (never returned)' });
const SipPassword = Type.String({ pattern: '^[!-~]{8,64}$', description: 'SIP digest password of the softphone: 8-64 printable ASCII characters, no spaces (never returned)' });
/** a fixed SIP contact: no commas (Asterisk reads a comma as a second contact), no spaces or angle brackets */
const SipUri = Type.String({
  maxLength: 200,
  pattern: "^sips?:(?:[A-Za-z0-9._~+!$&'()*=%-]+@)?(?:[A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?(?:;[A-Za-z0-9_.=-]+)*$",
  description: 'the desk phone\'s SIP URI, e.g. sip:8001@127.0.0.1:5090',
});

export const PhoneInput = Type.Union(
  [
    Type.Object({ sipPassword: SipPassword }, { additionalProperties: false, title: 'softphone', description: 'registers as sip:<employeeNo>@<asterisk>' }),
    Type.Object({ uri: SipUri }, { additionalProperties: false, title: 'desk phone', description: 'a fixed contact Asterisk calls' }),
  ],
  { description: 'either {sipPassword} (softphone) or {uri} (desk phone)' },
);
export type PhoneInputDto = Static<typeof PhoneInput>;

// `nullable` rather than a union with null: the app's ajv coerces types, and would turn null into 0
// against the integer branch of a union
const WrapUpSeconds = Type.Unsafe<number | null>({
  type: 'integer',
  nullable: true,
  minimum: 0,
  maximum: 3600,
  description: "after-call work for this agent in seconds; null: the queue's default",
});

export const CreateAgentBody = Type.Object(
  {
    employeeNo: EmployeeNo,
    name: Name,
    password: Password,
    role: AgentRole,
    skills: Skills,
    phone: PhoneInput,
    wrapUpSeconds: Type.Optional(WrapUpSeconds),
  },
  { additionalProperties: false },
);
export type CreateAgentInput = Static<typeof CreateAgentBody>;

export const PatchAgentBody = Type.Object(
  {
    name: Type.Optional(Name),
    password: Type.Optional(Password),
    role: Type.Optional(AgentRole),
    skills: Type.Optional(Skills),
    phone: Type.Optional(PhoneInput),
    wrapUpSeconds: Type.Optional(WrapUpSeconds),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchAgentInput = Static<typeof PatchAgentBody>;

export const AgentIdParams = Type.Object({ id: EmployeeNo }, { additionalProperties: false });

export const AgentListQuery = Type.Object(
  { skill: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,32}$', description: 'only agents having this skill' })) },
  { additionalProperties: false },
);

/** the live state the ACD knows (filled in when the service is given a liveState source) */
export const AgentLiveStateView = Type.Object({
  state: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  since: Type.String({ format: 'date-time' }),
});
export type AgentLiveStateViewDto = Static<typeof AgentLiveStateView>;

export const Agent = Type.Object({
  id: Type.String(),
  employeeNo: Type.String(),
  name: Type.String(),
  role: AgentRole,
  skills: Type.Array(Type.Object({ skill: Type.String(), level: Type.Integer() })),
  phone: Type.Object({
    kind: Type.Union([Type.Literal('softphone'), Type.Literal('uri')]),
    uri: Type.Optional(Type.String()),
  }),
  /** the dial string */
  endpoint: Type.String(),
  wrapUpSeconds: Type.Union([Type.Integer(), Type.Null()]),
  /** the phone's endpoint is in Asterisk now (false while Asterisk is unreachable: pushed again when ARI reconnects) */
  provisioned: Type.Boolean(),
  state: Type.Optional(Type.Union([AgentLiveStateView, Type.Null()])),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
export type AgentDto = Static<typeof Agent>;

export const AgentList = Type.Object({ items: Type.Array(Agent) });
