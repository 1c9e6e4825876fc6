-- One dashboard sample per pool: [epoch, ready, running] pushed on the
-- list vmpooler__dashboard__<pool>, newest first.
-- now (epoch seconds), horizon (s), ttl (s), gap: min_gap (s), pools.
-- Returns how many pools got a new sample.
--
-- Note [Dashboard history]: samples older than the horizon are dropped
-- and the list is capped at horizon / min_gap + 1 entries, so it stays
-- small whatever happens; it expires ttl seconds after its last sample.
-- Several daemons may share this Redis, each with its own sampler: a
-- sample closer than min_gap to the newest one is skipped, so the history
-- has one sample per interval whatever the number of daemons.
local cap = math.floor(horizon / gap) + 1
local pushed = 0
for _, pool in ipairs(pools) do
  local key = K.dashboard(pool)
  local newest = redis.call('LINDEX', key, 0)
  if not newest or now - cjson.decode(newest)[1] >= gap then
    redis.call('LPUSH', key, cjson.encode({now,
      redis.call('SCARD', K.pool_set('ready', pool)),
      redis.call('SCARD', K.pool_set('running', pool))}))
    pushed = pushed + 1
  end
  redis.call('LTRIM', key, 0, cap - 1)
  while true do
    local oldest = redis.call('LINDEX', key, -1)
    if not oldest or cjson.decode(oldest)[1] >= now - horizon then break end
    redis.call('RPOP', key)
  end
  redis.call('EXPIRE', key, ttl)
end
return pushed
