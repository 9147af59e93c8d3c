/**
 * The ACD engine's Lua scripts, embedded as strings so the compiled build (tsc copies only .ts) has them.
 * Every script that moves an agent keeps the invariant: an agent is in its skills' ready sets if and
 * only if its state is `ready`.
 *
 * Shared conventions (see redis-engine.ts):
 *  - ARGV[1] is a JSON object of key templates `{ agent: [pre, suf], ready: [pre, suf], call: [pre, suf] }`
 *    cut from the builders in src/redis/keys.ts, so the names built here are the names built there.
 *    The scripts touch keys they derive (an agent's ready sets, a waiting call's data): fine on one Redis
 *    (or Sentinel), not on Redis Cluster unless the prefix is a hash tag.
 *  - '' stands for null in agent hash fields (reason, callId).
 *  - Ready-set score = (10 - level) * 1e13 + readySinceMs: lowest first = highest level, then longest idle.
 *    Exact in a double until the year 2286. Scores go to Redis via string.format('%.0f') because Lua's
 *    tostring keeps only 14 significant digits.
 */
import { AGENT_TRANSITIONS } from '../../agents/agent.state.js';

const PRELUDE = `
local K = cjson.decode(ARGV[1])
local SPAN = 1e13
local function fmt(n) return string.format('%.0f', n) end
local function agentKey(id) return K.agent[1] .. id .. K.agent[2] end
local function readyKey(skill) return K.ready[1] .. skill .. K.ready[2] end
local function skillsOf(key)
  local raw = redis.call('hget', key, 'skills')
  if not raw then return {} end
  return cjson.decode(raw)
end
local function leaveReadySets(id, skills)
  for skill, _ in pairs(skills) do redis.call('zrem', readyKey(skill), id) end
end
local function joinReadySets(id, skills, since)
  for skill, level in pairs(skills) do
    redis.call('zadd', readyKey(skill), fmt((10 - level) * SPAN + since), id)
  end
end
`;

/**
 * KEYS[1] agent hash, KEYS[2] agents index set.
 * ARGV[2] agentId, ARGV[3] skills JSON, ARGV[4] endpoint, ARGV[5] now.
 * A new agent starts logged_out; an existing one keeps its state, and if ready is re-filed under its new skills.
 */
export const UPSERT_AGENT = `${PRELUDE}
local key, id = KEYS[1], ARGV[2]
local state = redis.call('hget', key, 'state')
if state then
  if state == 'ready' then
    leaveReadySets(id, skillsOf(key))
    joinReadySets(id, cjson.decode(ARGV[3]), tonumber(redis.call('hget', key, 'since')))
  end
  redis.call('hset', key, 'skills', ARGV[3], 'endpoint', ARGV[4])
else
  redis.call('hset', key, 'state', 'logged_out', 'reason', '', 'since', ARGV[5], 'callId', '', 'skills', ARGV[3], 'endpoint', ARGV[4])
end
redis.call('sadd', KEYS[2], id)
return 1
`;

/**
 * KEYS[1] agent hash, KEYS[2] agents index set.
 * ARGV[2] agentId, ARGV[3] skills JSON, ARGV[4] endpoint, ARGV[5] state, ARGV[6] reason ('' = null),
 * ARGV[7] since, ARGV[8] callId ('' = null).
 * Only for an agent Redis does not know (it restarted empty): the state comes from PostgreSQL's state log.
 * Returns 1 when restored, 0 when the agent exists (a live record always wins over the log).
 */
export const RESTORE_AGENT = `${PRELUDE}
local key, id = KEYS[1], ARGV[2]
if redis.call('exists', key) == 1 then return 0 end
redis.call('hset', key, 'state', ARGV[5], 'reason', ARGV[6], 'since', ARGV[7], 'callId', ARGV[8], 'skills', ARGV[3], 'endpoint', ARGV[4])
if ARGV[5] == 'ready' then joinReadySets(id, cjson.decode(ARGV[3]), tonumber(ARGV[7])) end
redis.call('sadd', KEYS[2], id)
return 1
`;

/** KEYS[1] agent hash, KEYS[2] agents index set; ARGV[2] agentId. */
export const REMOVE_AGENT = `${PRELUDE}
leaveReadySets(ARGV[2], skillsOf(KEYS[1]))
redis.call('del', KEYS[1])
redis.call('srem', KEYS[2], ARGV[2])
return 1
`;

/**
 * KEYS[1] agent hash. ARGV[2] the reason of a break that waits for the agent to be released (see TRANSITION).
 * Set only on an agent that exists (never a partial agent record). Returns 1 when set, 0 when there is no agent.
 */
export const SET_BREAK = `${PRELUDE}
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'break', ARGV[2])
return 1
`;

/**
 * KEYS[1] agent hash.
 * ARGV[2] agentId, ARGV[3] to, ARGV[4] reason ('' = null), ARGV[5] '1' when a callId is given, ARGV[6] callId,
 * ARGV[7] '1' when expectCallId is given, ARGV[8] expectCallId, ARGV[9] now, ARGV[10] agent-ready channel.
 * Returns {'ok', from, to, at, reason, callId} | {'unchanged', from, to, since, reason, callId}
 *       | {'not_found'} | {'illegal', from} | {'call_mismatch', from, currentCallId}.
 * `to` is on_break, with the break's reason, when a break waited (field 'break') and a move to ready / not_ready
 * was asked. The transition table is baked in from AGENT_TRANSITIONS, so TypeScript and Lua cannot disagree.
 */
export const TRANSITION = `${PRELUDE}
local TRANSITIONS = cjson.decode('${JSON.stringify(AGENT_TRANSITIONS)}')
local key, id, to = KEYS[1], ARGV[2], ARGV[3]
local cur = redis.call('hmget', key, 'state', 'callId', 'reason', 'since', 'break')
local from = cur[1]
if not from then return {'not_found'} end
local curCall = cur[2] or ''
if ARGV[7] == '1' and curCall ~= ARGV[8] then return {'call_mismatch', from, curCall} end
local function legal(a, b)
  for _, s in ipairs(TRANSITIONS[a] or {}) do
    if s == b then return true end
  end
  return false
end
local reason = ARGV[4]
-- a break approved while the agent was busy (field 'break', set by src/agents/breaks.ts) starts as the agent is
-- released: on_break with its reason instead of the move to ready / not_ready asked, where that move is legal
-- (from reserved it is not: the move happens as asked and the breaks sweep starts the break)
local pending = cur[5] or ''
if pending ~= '' and (to == 'ready' or to == 'not_ready') and legal(from, 'on_break') then
  to = 'on_break'
  reason = pending
end
-- ready -> ready (a repeated click, a retried request) changes nothing: the agent keeps its place in line
if from == 'ready' and to == 'ready' then return {'unchanged', from, to, cur[4] or '0', cur[3] or '', curCall} end
if not legal(from, to) then return {'illegal', from} end
-- reserved/on_call/wrap_up keep the call (wrap_up so the log can say which call); outbound takes one if given
local callId = ''
if ARGV[5] == '1' then
  if to == 'reserved' or to == 'on_call' or to == 'wrap_up' or to == 'outbound' then callId = ARGV[6] end
elseif to == 'reserved' or to == 'on_call' or to == 'wrap_up' then
  callId = curCall
end
local now = ARGV[9]
local skills = skillsOf(key)
if from == 'ready' then leaveReadySets(id, skills) end
redis.call('hset', key, 'state', to, 'reason', reason, 'since', now, 'callId', callId)
-- on a break (this one or any other), or signed out (its break is cancelled): no break waits any more
if to == 'on_break' or to == 'logged_out' then redis.call('hdel', key, 'break') end
if to == 'ready' then
  joinReadySets(id, skills, tonumber(now))
  redis.call('publish', ARGV[10], id)
end
return {'ok', from, to, now, reason, callId}
`;

/**
 * KEYS[1] the queue's waiting set.
 * ARGV[2] callId, ARGV[3] now, ARGV[4] how many calls at the head of the queue to check before this one.
 * Returns the reserved agent id, or nil.
 *
 * FIFO across processes: if a call ahead (among the first ARGV[4] of the queue) can be served by an agent
 * ready now, this call does not claim; that call's own session will. Calls further back than that window
 * are not checked, which bounds the script's work when the queue is long.
 */
export const CLAIM = `${PRELUDE}
local waitingKey, callId, now, scanAhead = KEYS[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local function callKey(cid) return K.call[1] .. cid .. K.call[2] end

-- a call's data, or nil (and its id dropped from the waiting set) when the data has expired
local function loadCall(cid)
  local raw = redis.call('get', callKey(cid))
  if not raw then
    redis.call('zrem', waitingKey, cid)
    return nil
  end
  return cjson.decode(raw)
end

-- the last stage reached after the time waited (skill relaxation), nil before the first stage
local function currentStage(call)
  local waited = (now - call.enqueuedAt) / 1000
  if waited < 0 then waited = 0 end
  local stage = nil
  for _, s in ipairs(call.stages) do
    if s.afterSeconds <= waited and (stage == nil or s.afterSeconds >= stage.afterSeconds) then stage = s end
  end
  return stage
end

-- the best ready agent with skill >= minLevel, and its score; a listed agent that is not ready (which the
-- scripts never leave behind) is dropped from the set rather than reserved
local function bestFor(need)
  local rk = readyKey(need.skill)
  local bound = '(' .. fmt((11 - need.minLevel) * SPAN)
  while true do
    local r = redis.call('zrangebyscore', rk, '-inf', bound, 'WITHSCORES', 'LIMIT', 0, 1)
    if not r[1] then return nil end
    if redis.call('hget', agentKey(r[1]), 'state') == 'ready' then return r[1], tonumber(r[2]) end
    redis.call('zrem', rk, r[1])
  end
end

local rank = redis.call('zrank', waitingKey, callId)
if not rank then return false end
if rank > 0 then
  for _, cid in ipairs(redis.call('zrange', waitingKey, 0, math.min(rank, scanAhead) - 1)) do
    local call = loadCall(cid)
    local stage = call and currentStage(call)
    if stage then
      for _, need in ipairs(stage.needs) do
        if bestFor(need) then return false end
      end
    end
  end
end

local call = loadCall(callId)
if not call then return false end
local stage = currentStage(call)
if not stage then return false end

local chosen = nil
if type(call.preferredAgent) == 'string' then
  local pk = agentKey(call.preferredAgent)
  if redis.call('hget', pk, 'state') == 'ready' then
    local skills = skillsOf(pk)
    for _, need in ipairs(stage.needs) do
      local level = skills[need.skill]
      if level and level >= need.minLevel then chosen = call.preferredAgent end
    end
  end
end
if not chosen then
  local bestScore = nil
  for _, need in ipairs(stage.needs) do
    local id, score = bestFor(need)
    if id and (bestScore == nil or score < bestScore) then chosen, bestScore = id, score end
  end
end
if not chosen then return false end

local ak = agentKey(chosen)
leaveReadySets(chosen, skillsOf(ak))
redis.call('hset', ak, 'state', 'reserved', 'reason', '', 'since', ARGV[3], 'callId', callId)
redis.call('zrem', waitingKey, callId)
redis.call('del', callKey(callId))
return chosen
`;
