-- A clone task ended.  ARGV[1]: pool, ARGV[2]: name, ARGV[3]: "ok" or
-- "failed", ARGV[4]: seconds it took, ARGV[5]: the day (YYYY-MM-DD).
-- ok: the duration goes into the VM's hash and the day's clone history.
-- failed: the VM moves pending -> completed, so that whatever the task
-- left in vSphere is destroyed.
local pool, host = ARGV[1], ARGV[2]
redis.call('HDEL', K.CLONING, host)
redis.call('SREM', K.ODCLONING, host)
count_clones()
if ARGV[3] == 'ok' then
  redis.call('HSET', K.vm(host), 'clone_time', ARGV[4])
  redis.call('HSET', K.clone(ARGV[5]), pool .. ':' .. host, ARGV[4])
elseif redis.call('SREM', K.pool_set('pending', pool), host) == 1 then
  redis.call('SADD', K.pool_set('completed', pool), host)
end
return 1
