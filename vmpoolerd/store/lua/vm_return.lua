-- Hand a running VM back: running -> completed (queued for destruction).
-- ARGV[1]: hostname, ARGV[2]: its owner as the API checked it ('*': any;
-- see Note [Owner checks] in api/routes.py).  Returns 1, 0 when the VM is
-- unknown, -2 when its owner is no longer the one checked, or -3 when it
-- is not running.
local host = ARGV[1]
local vm = 'vmpooler__vm__' .. host
local pool = redis.call('HGET', vm, 'template')
if not pool then
  return 0
end
local owner = redis.call('HGET', vm, 'token:user_dn') or redis.call('HGET', vm, 'token:user') or ''
if ARGV[2] ~= '*' and owner ~= ARGV[2] then
  return -2
end
if redis.call('SREM', 'vmpooler__running__' .. pool, host) == 0 then
  return -3
end
redis.call('SADD', 'vmpooler__completed__' .. pool, host)
redis.call('HDEL', 'vmpooler__active__' .. pool, host)
return 1
