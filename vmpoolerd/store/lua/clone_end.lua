-- A clone task ended.  ARGV[1]: pool, ARGV[2]: name, ARGV[3]: "ok" or
-- "failed", ARGV[4]: seconds it took, ARGV[5]: the day (YYYY-MM-DD).
-- ok: the duration goes into the VM's hash and the day's clone history.
-- failed: the VM moves pending -> completed, so that whatever the task
-- left in vSphere is destroyed.
local pool, host = ARGV[1], ARGV[2]
redis.call('HDEL', 'vmpooler__cloning', host)
redis.call('SREM', 'vmpooler__odcloning', host)
redis.call('SET', 'vmpooler__tasks__clone', redis.call('HLEN', 'vmpooler__cloning'))
if ARGV[3] == 'ok' then
  redis.call('HSET', 'vmpooler__vm__' .. host, 'clone_time', ARGV[4])
  redis.call('HSET', 'vmpooler__clone__' .. ARGV[5], pool .. ':' .. host, ARGV[4])
elseif redis.call('SREM', 'vmpooler__pending__' .. pool, host) == 1 then
  redis.call('SADD', 'vmpooler__completed__' .. pool, host)
end
return 1
