import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
/** numeric comes back from pg as a string; we write numbers */
type Numeric = ColumnType<string | null, number | null | undefined, number | null>;

export type Role = 'agent' | 'supervisor' | 'admin' | 'auditor';
export type Disposition = 'answered' | 'abandoned' | 'ivr_completed' | 'voicemail' | 'restricted' | 'failed' | 'callback_requested';

export interface UsersTable {
  id: Generated<string>;
  username: string;
  password_hash: string;
  role: Role;
  agent_id: string | null;
  disabled: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface AuthSessionsTable {
  token_hash: string;
  user_id: string;
  created_at: Generated<Date>;
  expires_at: Timestamp;
}

export interface CallsTable {
  id: string;
  direction: 'inbound' | 'outbound';
  caller: string;
  dialed: string;
  line: string | null;
  language: string | null;
  ivr_path: ColumnType<string[], string[] | undefined, string[]>;
  queue: string | null;
  agents: ColumnType<string[], string[] | undefined, string[]>;
  channel_id: string;
  arrived_at: Timestamp;
  ivr_done_at: NullableTimestamp;
  queued_at: NullableTimestamp;
  offered_at: NullableTimestamp;
  answered_at: NullableTimestamp;
  ended_at: NullableTimestamp;
  wait_seconds: Numeric;
  talk_seconds: Numeric;
  disposition: Disposition | null;
  end_reason: string | null;
  survey_score: number | null;
  /** migration 0013: how the survey key reads (3 or 5 levels), whether it counts as satisfied, when */
  survey_scale: ColumnType<number | null, number | null | undefined, number | null>;
  survey_satisfied: ColumnType<boolean | null, boolean | null | undefined, boolean | null>;
  survey_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** the business category the agent gives the call (migration 0011); null until set */
  category: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface CallEventsTable {
  id: Generated<string>;
  call_id: string;
  at: Timestamp;
  type: string;
  data: ColumnType<Record<string, unknown>, string, string>;
}

export interface CallbacksTable {
  id: Generated<string>;
  number: string;
  call_id: string | null;
  queue: string | null;
  reason: 'abandoned' | 'max_wait' | 'in_queue' | 'ticket_closed';
  status: Generated<'pending' | 'dialing' | 'done' | 'failed' | 'cancelled'>;
  requested_at: Generated<Date>;
  due_at: Timestamp;
  attempts: Generated<number>;
  done_at: NullableTimestamp;
  /** the closed ticket this callback was created for (migration 0012), unique when set */
  ticket_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** the ticket's callback deadline: closure + 24 h (DESIGN §4) */
  deadline_at: NullableTimestamp;
  idempotency_key: ColumnType<string | null, string | null | undefined, string | null>;
  /** migration 0015: the attempt being dialled holds the callback until then */
  lease_until: ColumnType<Date | null, Date | null | undefined, Date | null>;
  overdue_alerted_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  last_outcome: ColumnType<string | null, string | null | undefined, string | null>;
  survey_score: ColumnType<number | null, number | null | undefined, number | null>;
}

/** one attempt of a callback (migration 0015) */
export interface CallbackAttemptsTable {
  id: Generated<string>;
  callback_id: string;
  attempt: number;
  idempotency_key: string;
  started_at: Date;
  answered_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  ended_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  outcome: ColumnType<string | null, string | null | undefined, string | null>;
  cause: ColumnType<string | null, string | null | undefined, string | null>;
  call_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** one of an agent's skills: a queue asks for a skill, the level (1..9) orders the agents who have it */
export interface AgentSkill {
  skill: string;
  level: number;
}

export interface AgentsTable {
  employee_no: string;
  name: string;
  /** jsonb: written as a JSON string */
  skills: ColumnType<AgentSkill[], string | undefined, string>;
  phone_kind: 'softphone' | 'uri';
  phone_uri: string | null;
  sip_password: string | null;
  endpoint: string;
  wrap_up_seconds: number | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  deleted_at: NullableTimestamp;
  /** the extension the agent gave at sign-in (its current desk), null when signed out; not its provisioned phone */
  desk_extension: string | null;
}

export interface AgentStateLogTable {
  id: Generated<string>;
  agent_id: string;
  at: ColumnType<Date, Date | string | undefined, Date | string>;
  from_state: string;
  to_state: string;
  reason: string | null;
  call_id: string | null;
  actor: string | null;
}

export interface ListEntriesTable {
  kind: 'black' | 'white';
  number: string;
  reason: string;
  treatment: 'restrict' | 'queue' | 'priority' | 'skip-menu' | null;
  expires_at: NullableTimestamp;
  created_at: Generated<Date>;
  created_by: string | null;
}

export type ListImportStatus = 'staged' | 'applied' | 'rejected';
export type ListImportMode = 'all-or-nothing' | 'best-effort';

export interface ListImportLine {
  line: number;
  value: string;
  reason: string;
}

export interface ListImportReportJson {
  invalid: ListImportLine[];
  /** numbers an earlier line of the same file had */
  repeated: ListImportLine[];
  repeatedCount: number;
  /** numbers already on the list */
  listed: ListImportLine[];
}

/** one bulk import of a list file and its report (migration 0010) */
export interface ListImportsTable {
  id: Generated<string>;
  kind: 'black' | 'white';
  status: ListImportStatus;
  mode: ListImportMode;
  replace: Generated<boolean>;
  format: string;
  encoding: string;
  header: Generated<boolean>;
  rows: number;
  added: number;
  duplicates: number;
  removed: Generated<number>;
  invalid_count: number;
  /** jsonb: the listed lines of the report (capped), written as a JSON string */
  report: ColumnType<ListImportReportJson, string, string>;
  created_by: string;
  created_at: Generated<Date>;
  applied_by: string | null;
  applied_at: NullableTimestamp;
}

/** a validated row of a staged import, until it is applied */
export interface ListImportRowsTable {
  import_id: string;
  line: number;
  number: string;
  reason: string;
  treatment: 'restrict' | 'queue' | 'priority' | 'skip-menu' | null;
  expires_at: NullableTimestamp;
}

export type VoicemailStatus = 'recording' | 'saved' | 'empty' | 'failed';
export type VoicemailReason = 'maintenance' | 'ivr' | 'fallback';

export interface VoicemailsTable {
  id: Generated<string>;
  call_id: string | null;
  caller: string;
  line: string;
  language: Generated<string>;
  reason: VoicemailReason;
  /** Asterisk's stored recording name (the file is <recording dir>/<name>.wav) */
  recording_name: string;
  status: Generated<VoicemailStatus>;
  started_at: Timestamp;
  duration_seconds: number | null;
  created_at: Generated<Date>;
}

export interface MaintenanceTable {
  /** '*' = every line, else the line's number */
  scope: string;
  enabled: boolean;
  /** a prompt id */
  message: string | null;
  allow_voicemail: Generated<boolean>;
  updated_by: string;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export type SmsDirection = 'out' | 'in';
export type SmsStatus = 'queued' | 'sent' | 'delivered' | 'failed' | 'rejected' | 'expired' | 'received';

export interface SmsMessagesTable {
  id: Generated<string>;
  direction: SmsDirection;
  /** normalised; an inbound sender that is no phone number as the SMSC gave it */
  number: string;
  text: string;
  template: string | null;
  status: SmsStatus;
  /** the SMSC's id (receipts find the row by it) */
  message_id: string | null;
  error: string | null;
  /** users.id of the sender */
  sent_by: string | null;
  call_id: string | null;
  batch_id: string | null;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  sent_at: NullableTimestamp;
  delivered_at: NullableTimestamp;
}

export type BreakStatus = 'pending' | 'approved' | 'active' | 'rejected' | 'ended' | 'cancelled';

/** an agent's break (src/agents/breaks.ts) */
export interface BreaksTable {
  id: Generated<string>;
  agent_id: string;
  reason: string;
  minutes: number;
  status: Generated<BreakStatus>;
  requested_at: Generated<Date>;
  requested_by: string | null;
  decided_by: string | null;
  decided_at: NullableTimestamp;
  started_at: NullableTimestamp;
  ends_at: NullableTimestamp;
  ended_at: NullableTimestamp;
  end_reason: string | null;
}

/** append-only, hash-chained (migration 0009) */
export interface AuditLogTable {
  seq: ColumnType<string, never, never>;
  at: ColumnType<Date, Date, never>;
  actor: string;
  actor_role: string;
  action: string;
  target: string | null;
  details: ColumnType<Record<string, unknown>, string, never>;
  address: string | null;
  prev_hash: string;
  hash: string;
}

export type RecordingStatus = 'recording' | 'saved' | 'failed' | 'purged';
export type RecordingCallType = 'inbound' | 'outbound' | 'callback' | 'click';

/** a call's recording (migration 0011): Asterisk keeps the file, this row finds it and holds its SHA-256 */
export interface RecordingsTable {
  id: Generated<string>;
  call_id: string;
  /** Asterisk's stored recording name (the file is <recording dir>/<name>.wav) */
  name: string;
  call_type: RecordingCallType;
  status: Generated<RecordingStatus>;
  started_at: Timestamp;
  ended_at: NullableTimestamp;
  duration_seconds: Numeric;
  /** bigint comes back from pg as a string */
  size_bytes: ColumnType<string | null, number | null | undefined, number | null>;
  sha256: string | null;
  purged_at: NullableTimestamp;
  created_at: Generated<Date>;
}

export type TicketStatus = 'created' | 'dispatched' | 'returned' | 'resolved_first_contact' | 'closed';

/** a ticket as the ticket system reported it (src/tickets), folded from its events by event time */
export interface TicketsTable {
  ticket_id: string;
  /** normalised; null when no callable number was sent */
  caller_number: string | null;
  call_id: string | null;
  unit: string | null;
  summary: string | null;
  status: TicketStatus;
  created_at: NullableTimestamp;
  dispatched_at: NullableTimestamp;
  returned_at: NullableTimestamp;
  resolved_first_contact_at: NullableTimestamp;
  closed_at: NullableTimestamp;
  returned_count: Generated<number>;
  dispatch_count: Generated<number>;
  /** the callback serving the closure (its own, or a pending one to the same number that it joined) */
  callback_id: string | null;
  /** why a closed ticket has no callback: 'blacklisted' | 'no-number' */
  callback_skipped: string | null;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface TicketEventsTable {
  event_id: string;
  ticket_id: string;
  type: TicketStatus;
  at: Timestamp;
  received_at: Generated<Date>;
  /** the event as received (jsonb: written as a JSON string) */
  payload: ColumnType<Record<string, unknown>, string, never>;
}

/** a survey score credited to one agent of the call (migration 0013) */
export interface SurveyResultsTable {
  call_id: string;
  agent_id: string;
  line: string | null;
  score: number;
  scale: number;
  satisfied: boolean;
  at: Date;
}

/** KPI rollups (migration 0014, src/kpi/rollup.ts): counts and sums per period and dimension (docs/kpi.md) */
export type KpiGrain = '15m' | 'day' | 'month';
export type KpiDim = 'all' | 'line' | 'queue' | 'agent';
/** bigint sums come back from pg as strings */
type BigCount = ColumnType<string, number, number>;
export interface KpiRollupsTable {
  grain: KpiGrain;
  period_start: Timestamp;
  dim: KpiDim;
  key: string;
  offered: number;
  answered: number;
  ivr_completed: number;
  abandoned: number;
  short_abandoned: number;
  voicemails: number;
  callback_requested: number;
  other_unanswered: number;
  transfers: number;
  wait_count: number;
  wait_sum_ms: BigCount;
  sl_answered: number;
  wait_ms: number[];
  talk_count: number;
  talk_sum_ms: BigCount;
  wrap_count: number;
  wrap_sum_ms: BigCount;
  ratings: number;
  satisfied: number;
  fcr_first_calls: number;
  fcr_resolved_calls: number;
  tickets_opened: number;
  tickets_resolved_first_contact: number;
  tickets_dispatched: number;
  tickets_returned: number;
  tickets_closed: number;
  tickets_called_back_24h: number;
  tickets_callback_skipped: number;
}

/** one run of a KPI rollup job */
export interface KpiRollupRunsTable {
  id: Generated<string>;
  job_id: string | null;
  kind: string;
  /** jsonb [[fromIso, toIso], ...], written as a JSON string */
  ranges: ColumnType<Array<[string, string]>, string, string>;
  intervals: number;
  rows: number;
  started_at: Timestamp;
  finished_at: Generated<Date>;
}

export type KpiReportKind = 'monthly' | 'quarterly' | 'half-yearly' | 'annual';
export type KpiReportStatus = 'queued' | 'running' | 'done' | 'failed';
/** a periodic report (src/kpi/reports.ts): the HTML and CSV files are kept in the row */
export interface KpiReportsTable {
  id: Generated<string>;
  kind: KpiReportKind;
  period: string;
  status: Generated<KpiReportStatus>;
  html: string | null;
  csv: string | null;
  created_by: string;
  created_at: Generated<Date>;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  error: string | null;
}

export interface Database {
  kpi_rollups: KpiRollupsTable;
  kpi_rollup_runs: KpiRollupRunsTable;
  kpi_reports: KpiReportsTable;
  callback_attempts: CallbackAttemptsTable;
  survey_results: SurveyResultsTable;
  tickets: TicketsTable;
  ticket_events: TicketEventsTable;
  recordings: RecordingsTable;
  audit_log: AuditLogTable;
  breaks: BreaksTable;
  list_entries: ListEntriesTable;
  list_imports: ListImportsTable;
  list_import_rows: ListImportRowsTable;
  users: UsersTable;
  auth_sessions: AuthSessionsTable;
  calls: CallsTable;
  call_events: CallEventsTable;
  agents: AgentsTable;
  agent_state_log: AgentStateLogTable;
  callbacks: CallbacksTable;
  voicemails: VoicemailsTable;
  maintenance: MaintenanceTable;
  sms_messages: SmsMessagesTable;
}

export type UserRow = Selectable<UsersTable>;
export type CallRow = Selectable<CallsTable>;
export type NewCall = Insertable<CallsTable>;
export type CallUpdate = Updateable<CallsTable>;
export type CallEventRow = Selectable<CallEventsTable>;
export type AgentRow = Selectable<AgentsTable>;
export type AgentStateLogRow = Selectable<AgentStateLogTable>;
export type VoicemailRow = Selectable<VoicemailsTable>;
export type MaintenanceRow = Selectable<MaintenanceTable>;
export type SmsRow = Selectable<SmsMessagesTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
export type ListEntryRow = Selectable<ListEntriesTable>;
export type ListImportRow = Selectable<ListImportsTable>;
export type RecordingRow = Selectable<RecordingsTable>;
export type TicketRow = Selectable<TicketsTable>;
export type TicketEventRow = Selectable<TicketEventsTable>;
