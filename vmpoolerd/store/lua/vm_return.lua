-- Hand a running VM back: running -> completed (queued for destruction).
-- host: its name, owner: its owner as the API checked it ('*': any;
-- see Note [Owner checks] in api/routes.py).  Returns R.DONE, or
-- R.NO_SUCH_VM, R.OTHER_OWNER (its owner is no longer the one checked) or
-- R.NOT_RUNNING (errors.VmChange).
local pool, refused = running_vm(host, owner)
if not pool then
  return refused
end
redis.call('SREM', K.pool_set('running', pool), host)
unindex_vm(host)  -- Note [Token index] in preamble/vms.lua
redis.call('SADD', K.pool_set('completed', pool), host)
redis.call('HDEL', K.active(pool), host)
return R.DONE
