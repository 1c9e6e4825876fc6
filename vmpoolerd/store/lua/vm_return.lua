-- Hand a running VM back: running -> completed (queued for destruction).
-- ARGV[1]: hostname, ARGV[2]: its owner as the API checked it ('*': any;
-- see Note [Owner checks] in api/routes.py).  Returns R.DONE, or
-- R.NO_SUCH_VM, R.OTHER_OWNER (its owner is no longer the one checked) or
-- R.NOT_RUNNING (errors.VmChange).
local host = ARGV[1]
local vm = K.vm(host)
local pool = redis.call('HGET', vm, 'template')
if not pool then
  return R.NO_SUCH_VM
end
local owner = redis.call('HGET', vm, 'token:user_dn') or redis.call('HGET', vm, 'token:user') or ''
if ARGV[2] ~= '*' and owner ~= ARGV[2] then
  return R.OTHER_OWNER
end
if redis.call('SREM', K.pool_set('running', pool), host) == 0 then
  return R.NOT_RUNNING
end
redis.call('SADD', K.pool_set('completed', pool), host)
redis.call('HDEL', K.active(pool), host)
return R.DONE
