-- Counts for /status.  pool_names: the pools.
-- Returns {clones in flight, {ready, running, pending, completed, lastboot,
-- {kind, count, ...} of its failures, its last 5 failures (JSON), what its
-- demand says (JSON or ''), its clone pause (JSON or ''), the manager
-- holding its lease or ''} per pool, why Redis's state is in doubt or ''}.
local pools = {}
for i, pool in ipairs(pool_names) do
  pools[i] = {
    redis.call('SCARD', K.pool_set('ready', pool)),
    redis.call('SCARD', K.pool_set('running', pool)),
    redis.call('SCARD', K.pool_set('pending', pool)),
    redis.call('SCARD', K.pool_set('completed', pool)),
    redis.call('HGET', K.LASTBOOT, pool) or '',
    redis.call('HGETALL', K.failure_counts(pool)),
    redis.call('LRANGE', K.failures(pool), 0, 4),
    redis.call('HGET', K.demand(pool), 'shown') or '',
    redis.call('GET', K.clone_pause(pool)) or '',
    redis.call('GET', K.lease(pool)) or '',
  }
end
local cloning = tonumber(redis.call('GET', K.tasks('clone')) or '0') or 0
return {cloning, pools, redis.call('GET', K.DOUBTFUL) or ''}
