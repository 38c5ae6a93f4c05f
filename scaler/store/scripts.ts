import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * Lua scripts: every write whose keys belong together (instance, liveness index, series, commands, audit) happens
 * in one script, so a reader never sees half of it and a check-in costs at most one round trip (check-ins that arrive
 * together share one script call).
 * Audit entries arrive as a JSON head without its closing brace (`{"at":..,"actor":..`) so that a script can add
 * what only it knows (`,"kind":..,"details":{..}}`) without decoding JSON; the check-in script, which audits many
 * instances in one call, builds each head itself from the check-in's time and instance id.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      // After a Redis restart the script cache is empty: load it again by running the source once.
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
        return redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw error;
    }
  }
}

/**
 * The head of every script below. `#!lua` (Redis 7 script flags, none given: the script writes) has Redis refuse the
 * whole script up front while it is out of memory, instead of running it up to its first refused write, after writes
 * that need no memory (PERSIST, DEL) were already done: a refused call then changed nothing.
 */
const AUDIT = `#!lua
local function audit(streamKey, head, kind, extra, maxLen)
  redis.call('XADD', streamKey, 'MAXLEN', '~', maxLen, '*', 'e', head .. ',"kind":"' .. kind .. '"' .. (extra or '') .. '}')
end
`;

/** Keys of each group and of each check-in in a `checkInsScript` call, and arguments of each check-in. */
const GROUP_KEYS = 5;
const CHECK_IN_KEYS = 3;
const CHECK_IN_ARGS = 13;

/**
 * Records a batch of sidecar reports, in order; the batch is atomic as one script is, and every check-in in it is
 * checked and answered on its own, so that one for an unknown group refuses that check-in only.
 * KEYS: 5 per group the batch reports to (group, live index, stress series, group audit, untracked groups index), then
 * 3 per check-in (instance, commands, instance audit): a batch's check-ins mostly share a group, whose keys are sent once.
 * ARGV: 1 idle TTL ms, 2 shutting-down TTL ms, 3 command TTL ms, 4 stress max points, 5 stress retention ms,
 * 6 audit max entries, 7 instance audit TTL ms, 8 number of groups; then 13 per check-in: 1 its group's number
 * (1-based, in KEYS order), 2 instanceType, 3 now, 4 kind, 5 details JSON, 6 stats JSON or '', 7 stress or '',
 * 8 shutting down 1/0, 9 reconfigureComplete or '', 10 reconfigureError 1/0, 11 instance id, 12 sidecar timestamp or '',
 * 13 group id. A group nobody configured is accepted as jitsi-autoscaler does: its id joins the untracked index and
 * its instances are kept like any others. Returns per check-in {'ok', shutdown 1/0, reconfigure or ''},
 * {'type_mismatch', groupType} or
 * {'error', Redis's error} (what that check-in wrote before the error stays).
 * Expired entries of a live index and old points of a stress series are dropped once per batch, after its writes.
 */
export const checkInsScript = new LuaScript(
  AUDIT +
    `
local idleTtl, shuttingDownTtl, commandTtl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stressMax, stressRetention, auditMax, instanceAuditTtl = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local groupCount = tonumber(ARGV[8])
local groupTypes = {}
local liveCutoff = {}
local stressCutoff = {}
local stressFloor = {}

-- A point of a stress series, with the id asked for: through redis.pcall to get a refusal back, redis.call to raise it.
local function addStress(call, stressKey, id, instanceId, stress)
  return call('XADD', stressKey, 'MAXLEN', '~', stressMax, id, 'i', instanceId, 's', stress)
end
local function refused(reply) return type(reply) == 'table' and reply.err ~= nil end

local function checkIn(K, A)
  local G = (tonumber(ARGV[A + 1]) - 1) * ${GROUP_KEYS}
  local groupKey, liveKey, stressKey, groupAuditKey, untrackedKey = KEYS[G + 1], KEYS[G + 2], KEYS[G + 3], KEYS[G + 4], KEYS[G + 5]
  local instanceKey, commandsKey, instanceAuditKey = KEYS[K + 1], KEYS[K + 2], KEYS[K + 3]
  local instanceType, now, kind, stress, instanceId = ARGV[A + 2], tonumber(ARGV[A + 3]), ARGV[A + 4], ARGV[A + 7], ARGV[A + 11]
  local groupType = groupTypes[groupKey]
  if groupType == nil then
    local group = redis.call('HMGET', groupKey, 'instanceType', 'spec')
    -- '' marks a group nobody configured: any instance type may report to it.
    groupType = group[2] and group[1] or ''
    groupTypes[groupKey] = groupType
  end
  if groupType == '' then redis.call('SADD', untrackedKey, ARGV[A + 13])
  elseif groupType ~= instanceType then return {'type_mismatch', groupType} end
  local function auditBoth(auditKind, extra)
    local head = '{"at":' .. ARGV[A + 3] .. ',"actor":"sidecar","instanceId":' .. cjson.encode(instanceId)
    audit(groupAuditKey, head, auditKind, extra, auditMax)
    audit(instanceAuditKey, head, auditKind, extra, auditMax)
    redis.call('PEXPIRE', instanceAuditKey, instanceAuditTtl)
  end
  local prior = redis.call('HGET', instanceKey, 'state')
  local state = 'running'
  local reportsShutdown = ARGV[A + 8] == '1' or kind == 'shutdown'
  local sticky = prior == 'shutting_down'
  local resumed = false
  -- Shutting down is sticky, unless the scaler took its request back and the sidecar has stopped draining.
  if sticky and not reportsShutdown and redis.call('HEXISTS', commandsKey, 'shutdownWithdrawn') == 1 then
    sticky, resumed = false, true
    redis.call('HDEL', commandsKey, 'shutdownWithdrawn')
    redis.call('HDEL', instanceKey, 'shutdownConfirmedAt')
  end
  if sticky or reportsShutdown then state = 'shutting_down' end
  local ttl = idleTtl
  if state == 'shutting_down' then ttl = shuttingDownTtl end
  local fields = {'state', state, 'details', ARGV[A + 5], 'instanceType', instanceType, 'lastReportAt', ARGV[A + 3]}
  if ARGV[A + 6] ~= '' then
    table.insert(fields, 'stats'); table.insert(fields, ARGV[A + 6])
    table.insert(fields, 'sidecarTimestamp'); table.insert(fields, ARGV[A + 12])
  end
  if stress ~= '' then table.insert(fields, 'stress'); table.insert(fields, stress) end
  if not prior then table.insert(fields, 'firstSeenAt'); table.insert(fields, ARGV[A + 3]) end
  redis.call('HSET', instanceKey, unpack(fields))
  redis.call('PEXPIRE', instanceKey, ttl)
  redis.call('ZADD', liveKey, now + ttl, instanceId)
  liveCutoff[liveKey] = math.max(liveCutoff[liveKey] or now, now)
  if stress ~= '' then
    -- Stamped with the scaler's clock, which readers use for the age cut-off, but never before the series' last
    -- entry: another process's check-in may have been stamped a millisecond later and written first. That is rare,
    -- so the last entry is read only when Redis refuses the stamp, not before every write.
    local stamp = math.max(now, stressFloor[stressKey] or 0)
    local added = addStress(redis.pcall, stressKey, string.format('%d-*', stamp), instanceId, stress)
    if refused(added) then
      local last = redis.call('XREVRANGE', stressKey, '+', '-', 'COUNT', 1)[1]
      stamp = math.max(stamp, last and tonumber(string.match(last[1], '^%d+')) or 0)
      added = addStress(redis.pcall, stressKey, string.format('%d-*', stamp), instanceId, stress)
    end
    -- A series trimmed empty still remembers its last id: Redis's own clock then.
    if refused(added) then addStress(redis.call, stressKey, '*', instanceId, stress) end
    stressFloor[stressKey] = stamp
    stressCutoff[stressKey] = math.max(stressCutoff[stressKey] or now, now)
  end
  if not prior or prior == 'provisioning' then auditBoth('instance.joined') end
  if resumed then auditBoth('instance.resumed') end
  if state == 'shutting_down' and prior ~= 'shutting_down' then auditBoth('instance.shutting_down', ',"details":{"via":"' .. kind .. '"}') end
  -- A sidecar's shutdown call confirms its drain is over (its last meeting ended): the actuator stops it only after.
  if kind == 'shutdown' and redis.call('HSETNX', instanceKey, 'shutdownConfirmedAt', ARGV[A + 3]) == 1 then
    auditBoth('shutdown.confirmed')
  end
  local cmd = redis.call('HMGET', commandsKey, 'shutdown', 'reconfigure', 'shutdownDelivered', 'reconfigureDelivered')
  local shutdown = cmd[1] == '1'
  local reconfigure = cmd[2]
  if reconfigure and ARGV[A + 9] ~= '' and ARGV[A + 9] == reconfigure then
    redis.call('HDEL', commandsKey, 'reconfigure', 'reconfigureDelivered')
    auditBoth('reconfigure.completed', ',"details":{"request":' .. cjson.encode(reconfigure) .. '}')
    reconfigure = false
  elseif reconfigure and ARGV[A + 10] == '1' then
    redis.call('HDEL', commandsKey, 'reconfigure', 'reconfigureDelivered')
    auditBoth('reconfigure.failed', ',"details":{"request":' .. cjson.encode(reconfigure) .. '}')
    reconfigure = false
  end
  local replies = kind == 'poll' or kind == 'status'
  if replies and shutdown and not cmd[3] then
    redis.call('HSET', commandsKey, 'shutdownDelivered', ARGV[A + 3])
    auditBoth('shutdown.delivered')
  end
  if replies and reconfigure and not cmd[4] then
    redis.call('HSET', commandsKey, 'reconfigureDelivered', ARGV[A + 3])
    auditBoth('reconfigure.delivered', ',"details":{"request":' .. cjson.encode(reconfigure) .. '}')
  end
  if shutdown or reconfigure then redis.call('PEXPIRE', commandsKey, math.max(ttl, commandTtl)) end
  return {'ok', shutdown and '1' or '0', reconfigure or ''}
end

-- A check-in that Redis refuses (a key of another type, out of memory) is answered with the error, alone.
local function failed(err)
  if type(err) == 'table' then err = err.err end
  return {'error', tostring(err)}
end

local results = {}
local firstCheckInKey = groupCount * ${GROUP_KEYS}
for n = 0, (#KEYS - firstCheckInKey) / ${CHECK_IN_KEYS} - 1 do
  local ok, result = pcall(checkIn, firstCheckInKey + n * ${CHECK_IN_KEYS}, 8 + n * ${CHECK_IN_ARGS})
  if ok then results[n + 1] = result else results[n + 1] = failed(result) end
end
for liveKey, now in pairs(liveCutoff) do redis.call('ZREMRANGEBYSCORE', liveKey, '-inf', now) end
for stressKey, now in pairs(stressCutoff) do redis.call('XTRIM', stressKey, 'MINID', '~', (now - stressRetention) .. '-0') end
return results
`,
);

/**
 * KEYS: group, groups index, group audit. ARGV: 1 mode create|replace, 2 id, 3 instanceType, 4 desired, 5 min,
 * 6 max, 7 allowScheduler 1/0, 8 environment, 9 spec JSON, 10 now, 11 audit head, 12 audit max.
 * Returns 'ok', 'exists' (create) or 'missing' (replace).
 */
export const writeGroupScript = new LuaScript(
  AUDIT +
    `
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] == 'create' and exists then return 'exists' end
if ARGV[1] == 'replace' and not exists then return 'missing' end
local fields = {'id', ARGV[2], 'instanceType', ARGV[3], 'desired', ARGV[4], 'min', ARGV[5], 'max', ARGV[6],
  'allowScheduler', ARGV[7], 'environment', ARGV[8], 'spec', ARGV[9], 'updatedAt', ARGV[10]}
if ARGV[1] == 'create' then
  table.insert(fields, 'createdAt'); table.insert(fields, ARGV[10])
  table.insert(fields, 'paused'); table.insert(fields, '0')
  redis.call('PERSIST', KEYS[3])
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[2])
audit(KEYS[3], ARGV[11], 'group.' .. ARGV[1] .. 'd', ',"details":{"spec":' .. ARGV[9] .. ',"desired":' .. ARGV[4] .. '}', ARGV[12])
return 'ok'
`,
);

/**
 * KEYS: group, groups index, live index, stress series, group audit, load profile. ARGV: 1 id, 2 audit head,
 * 3 audit max, 4 audit retention ms. The audit outlives the group for its retention; instances expire by their own TTL.
 */
export const deleteGroupScript = new LuaScript(
  AUDIT +
    `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[6])
redis.call('SREM', KEYS[2], ARGV[1])
audit(KEYS[5], ARGV[2], 'group.deleted', '', ARGV[3])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
return 'ok'
`,
);

/**
 * KEYS: group, group audit. ARGV: 1 mode set|up|down, 2 target, 3 now, 4 audit head, 5 audit max, 6 audit kind.
 * `set` refuses a target outside [min, max]; `up`/`down` (a scheduler's full scaling) clamp the target to
 * [min, max], only move in their direction and only touch groups that allow it.
 * Returns {'ok', from, to}, {'same', from, to}, {'missing'}, {'range', min, max} or {'not_allowed'}.
 */
export const setDesiredScript = new LuaScript(
  AUDIT +
    `
local g = redis.call('HMGET', KEYS[1], 'min', 'max', 'desired', 'allowScheduler')
if not g[1] then return {'missing'} end
local min, max, old = tonumber(g[1]), tonumber(g[2]), tonumber(g[3])
local target = tonumber(ARGV[2])
local mode = ARGV[1]
if mode == 'set' then
  if target < min or target > max then return {'range', min, max} end
else
  if g[4] ~= '1' then return {'not_allowed'} end
  target = math.max(min, math.min(max, target))
  if mode == 'up' then target = math.max(old, target) else target = math.min(old, target) end
end
if target == old then return {'same', old, target} end
redis.call('HSET', KEYS[1], 'desired', target, 'updatedAt', ARGV[3])
audit(KEYS[2], ARGV[4], ARGV[6], ',"details":{"from":' .. old .. ',"to":' .. target .. '}', ARGV[5])
return {'ok', old, target}
`,
);

/** KEYS: group, group audit. ARGV: 1 paused 1/0, 2 now, 3 audit head, 4 audit max. Returns 'ok' or 'missing'. */
export const setPausedScript = new LuaScript(
  AUDIT +
    `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
redis.call('HSET', KEYS[1], 'paused', ARGV[1], 'updatedAt', ARGV[2])
audit(KEYS[2], ARGV[3], ARGV[1] == '1' and 'group.paused' or 'group.resumed', '', ARGV[4])
return 'ok'
`,
);

/**
 * KEYS: group, live index, group audit, then per instance: commands, instance audit.
 * ARGV: 1 field shutdown|reconfigure, 2 value ('' withdraws the command), 3 now, 4 command TTL ms, 5 audit head, 6 audit max,
 * 7 instance audit TTL ms, 8.. instance ids.
 * Nothing is written unless every instance is live in the group. Returns {'ok'}, {'missing'} or {'unknown', ids...}.
 */
export const requestCommandScript = new LuaScript(
  AUDIT +
    `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local now = tonumber(ARGV[3])
local unknown = {'unknown'}
for i = 8, #ARGV do
  local expires = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if not expires or tonumber(expires) <= now then table.insert(unknown, ARGV[i]) end
end
if #unknown > 1 then return unknown end
local withdraw = ARGV[2] == ''
local kind = ARGV[1] .. (withdraw and '.withdrawn' or '.requested')
local extra = withdraw and '' or (',"details":{"request":' .. cjson.encode(ARGV[2]) .. '}')
for i = 8, #ARGV do
  local n = i - 8
  local commands, instanceAudit = KEYS[4 + 2 * n], KEYS[5 + 2 * n]
  if withdraw then
    redis.call('HDEL', commands, ARGV[1])
    -- Read by the next check-in: the instance leaves shutting_down once its sidecar stops draining.
    if ARGV[1] == 'shutdown' then redis.call('HSET', commands, 'shutdownWithdrawn', ARGV[3]) end
  else
    redis.call('HSET', commands, ARGV[1], ARGV[2])
  end
  redis.call('PEXPIRE', commands, ARGV[4])
  redis.call('HDEL', commands, ARGV[1] .. 'Delivered')
  local head = ARGV[5] .. ',"instanceId":' .. cjson.encode(ARGV[i])
  audit(KEYS[3], head, kind, extra, ARGV[6])
  audit(instanceAudit, head, kind, extra, ARGV[6])
  redis.call('PEXPIRE', instanceAudit, ARGV[7])
end
return {'ok'}
`,
);

/**
 * KEYS: group, instance, live index, group audit, instance audit. ARGV: 1 instance id, 2 details JSON, 3 now,
 * 4 provisioning TTL ms, 5 audit head, 6 audit max, 7 instance audit TTL ms.
 * Returns 'ok', 'missing' (no such group) or 'exists' (the instance already reported; it is not set back).
 */
export const registerProvisioningScript = new LuaScript(
  AUDIT +
    `
local groupType = redis.call('HGET', KEYS[1], 'instanceType')
if not groupType then return 'missing' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'exists' end
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'state', 'provisioning', 'details', ARGV[2], 'instanceType', groupType, 'firstSeenAt', ARGV[3], 'lastReportAt', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
audit(KEYS[4], ARGV[5], 'instance.provisioning', '', ARGV[6])
audit(KEYS[5], ARGV[5], 'instance.provisioning', '', ARGV[6])
redis.call('PEXPIRE', KEYS[5], ARGV[7])
return 'ok'
`,
);
