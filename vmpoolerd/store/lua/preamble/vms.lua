-- Note [Changes to running VMs only] (vm_update.lua) and Note [Owner
-- checks] (api/routes.py): the pool of the VM ``host`` when it is running
-- and ``owner`` ('*': any) is still its owner; else nil and the refusal
-- (R.NO_SUCH_VM, R.OTHER_OWNER or R.NOT_RUNNING).
local function running_vm(host, owner)
  local vm = K.vm(host)
  local pool = redis.call('HGET', vm, 'template')
  if not pool then
    return nil, R.NO_SUCH_VM
  end
  local holder = redis.call('HGET', vm, 'token:user_dn') or redis.call('HGET', vm, 'token:user') or ''
  if owner ~= '*' and holder ~= owner then
    return nil, R.OTHER_OWNER
  end
  if redis.call('SISMEMBER', K.pool_set('running', pool), host) == 0 then
    return nil, R.NOT_RUNNING
  end
  return pool
end
