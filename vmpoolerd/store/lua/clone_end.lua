-- A clone task ended.  pool, host: its name, outcome: "ok" or "failed",
-- seconds: how long it took, day: the day (YYYY-MM-DD).
-- ok: the duration goes into the VM's hash and the day's clone history.
-- failed: the VM moves pending -> completed, so that whatever the task
-- left in vSphere is destroyed.
redis.call('HDEL', K.CLONING, host)
redis.call('SREM', K.ODCLONING, host)
count_clones()
if outcome == 'ok' then
  redis.call('HSET', K.vm(host), 'clone_time', seconds)
  redis.call('HSET', K.clone(day), pool .. ':' .. host, seconds)
elseif redis.call('SREM', K.pool_set('pending', pool), host) == 1 then
  redis.call('SADD', K.pool_set('completed', pool), host)
end
return 1
