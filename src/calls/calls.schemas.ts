import { Type, type Static } from '@sinclair/typebox';

export const Disposition = Type.Union([
  Type.Literal('answered'),
  Type.Literal('abandoned'),
  Type.Literal('ivr_completed'),
  Type.Literal('voicemail'),
  Type.Literal('restricted'),
  Type.Literal('failed'),
  Type.Literal('callback_requested'),
]);

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Ts = Nullable(Type.String({ format: 'date-time' }));

export const CallEvent = Type.Object({ at: Type.String({ format: 'date-time' }), type: Type.String(), data: Type.Record(Type.String(), Type.Unknown()) });

export const Call = Type.Object({
  id: Type.String({ format: 'uuid' }),
  direction: Type.Union([Type.Literal('inbound'), Type.Literal('outbound')]),
  caller: Type.String(),
  dialed: Type.String(),
  line: Nullable(Type.String()),
  language: Nullable(Type.String()),
  ivrPath: Type.Array(Type.String()),
  queue: Nullable(Type.String()),
  agents: Type.Array(Type.String()),
  arrivedAt: Type.String({ format: 'date-time' }),
  queuedAt: Ts,
  answeredAt: Ts,
  endedAt: Ts,
  waitSeconds: Type.Union([Type.Number(), Type.Null()]),
  talkSeconds: Type.Union([Type.Number(), Type.Null()]),
  disposition: Type.Union([Disposition, Type.Null()]),
  recordingId: Type.Union([Type.String(), Type.Null()]),
  survey: Type.Union([Type.Object({ score: Type.Number() }), Type.Null()]),
  events: Type.Array(CallEvent),
});
export type CallDto = Static<typeof Call>;

export const CallListQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    caller: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    line: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    agent: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    disposition: Type.Optional(Disposition),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const CallList = Type.Object({ items: Type.Array(Call), nextCursor: Type.Union([Type.String(), Type.Null()]) });
export const CallIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
