-- Hand a running VM back: running -> completed (queued for destruction).
-- ARGV[1]: hostname.  Returns 1, or 0 when the VM is not running.
local host = ARGV[1]
local pool = redis.call('HGET', 'vmpooler__vm__' .. host, 'template')
if not pool then
  return 0
end
if redis.call('SREM', 'vmpooler__running__' .. pool, host) == 0 then
  return 0
end
redis.call('SADD', 'vmpooler__completed__' .. pool, host)
redis.call('HDEL', 'vmpooler__active__' .. pool, host)
return 1
