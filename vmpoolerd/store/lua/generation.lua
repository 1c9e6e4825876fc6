-- Is this the Redis the daemon wrote to?  Note [Redis generations] in
-- generation.py.
--
-- known_id: the marker's id as this daemon last saw it ('' if never),
-- known_n: the count it last saw (0 if never), new_id: an id for a new
-- marker, with_pools: 1 when pools (the configured pools) are sent.
-- Returns {id, count, doubt ('' if none)}; without the pools, {'', 0, '',
-- 1} when it needs them, having changed nothing.
--
-- Note [Generations without the pools]: every cycle of every pool checks
-- the generation, so a check must not cost what all the pools cost.  The
-- pools are needed only to tell a new Redis from one with pool state (no
-- marker) and to hold a rolled-back Redis's VMs: rare cases, seen before
-- anything is written.  So the pools are sent only when the script,
-- called without them, asks for them.
local marker, doubt = K.GENERATION, K.DOUBTFUL

if with_pools == 0 then
  local seen_id = redis.call('HGET', marker, 'id')
  local seen_n = tonumber(redis.call('HGET', marker, 'n') or '0')
  if not seen_id or (known_id ~= '' and (seen_id ~= known_id or seen_n + 1 <= known_n)) then
    return {'', 0, '', 1}
  end
end

local function has_pool_state()
  for _, pool in ipairs(pools) do
    for _, set in ipairs({'pending', 'ready', 'running', 'completed', 'discovered'}) do
      if redis.call('EXISTS', K.pool_set(set, pool)) == 1 then
        return true
      end
    end
  end
  return false
end

local reason = nil
local rollback = false
local id = redis.call('HGET', marker, 'id')
if not id then
  if known_id ~= '' then
    reason = 'Redis lost its data (its generation marker is gone)'
    -- Note [A marker gone is a rollback]: whatever pool state is left
    -- (a restore from a backup made before the marker existed, or the
    -- marker deleted) is of unknown age: its ready and pending VMs may have
    -- been handed out since, so they are held as for a stale marker.
    rollback = true
  elseif not has_pool_state() then
    reason = 'Redis holds no pool state (new, emptied, or restored from before it had any)'
  end
  -- else: a Redis with pools but no marker, as vmpooler leaves it: trusted
  id = new_id
  redis.call('HSET', marker, 'id', id, 'n', 0)
elseif known_id ~= '' and id ~= known_id then
  reason = 'Redis is not the one this daemon wrote to (another generation marker)'
  rollback = true
end
local n = redis.call('HINCRBY', marker, 'n', 1)
if not reason and known_id ~= '' and n <= known_n then
  reason = 'Redis went back in time (restored from an older snapshot, or a stale replica)'
  rollback = true
end
if reason and redis.call('EXISTS', doubt) == 0 then
  redis.call('SET', doubt, reason)
end
if rollback then
  -- VMs ready or pending in an older state may have been handed out since:
  -- none of them is handed out again.  They are held in discovered (where
  -- they are not destroyed while the doubt lasts) for an operator to adopt.
  for _, pool in ipairs(pools) do
    for _, set in ipairs({'ready', 'pending'}) do
      local key = K.pool_set(set, pool)
      for _, host in ipairs(redis.call('SMEMBERS', key)) do
        redis.call('SMOVE', key, K.pool_set('discovered', pool), host)
      end
    end
    redis.call('SET', K.empty(pool), 'true')
  end
end
return {id, n, redis.call('GET', doubt) or ''}
