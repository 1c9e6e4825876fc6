-- Hand a running VM back: running -> completed (queued for destruction).
-- ARGV[1]: hostname, ARGV[2]: its owner as the API checked it ('*': any;
-- see Note [Owner checks] in api/routes.py).  Returns 1, 0 when the VM is not
-- running, or -2 when its owner is no longer the one checked.
local host = ARGV[1]
local pool = redis.call('HGET', 'vmpooler__vm__' .. host, 'template')
if not pool then
  return 0
end
local owner = redis.call('HGET', 'vmpooler__vm__' .. host, 'token:user') or ''
if ARGV[2] ~= '*' and owner ~= ARGV[2] then
  return -2
end
if redis.call('SREM', 'vmpooler__running__' .. pool, host) == 0 then
  return 0
end
redis.call('SADD', 'vmpooler__completed__' .. pool, host)
redis.call('HDEL', 'vmpooler__active__' .. pool, host)
return 1
