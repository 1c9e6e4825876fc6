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

-- Note [Token index]: K.token_vms(token) is the set of the hosts checked
-- out with ``token``, so that a token's status (token_vms.lua) reads its
-- own VMs, not every pool's running set: its cost does not grow with the
-- fleet.  The set may hold more than the truth, never less: every script
-- that gives a running VM a token adds it here in the same script
-- (checkout.lua, ondemand_handout.lua, adopt.lua); a VM leaving running
-- is taken out where that is cheap (vm_return.lua, move.lua,
-- checkout_undo.lua), a deleted token's set goes with it
-- (token_delete.lua), and token_vms.lua checks each member (still
-- running, still that token's) and drops those that are not.  What was
-- running before this index existed, or was checked out by a vmpooler
-- sharing the Redis, is added by each API daemon at its start
-- (token_index.lua, a bounded step at a time).
local function index_vm(host, token)
  if token and token ~= '' then
    redis.call('SADD', K.token_vms(token), host)
  end
end

-- The VM ``host`` leaves its token's index (it is no longer running).
local function unindex_vm(host)
  local token = redis.call('HGET', K.vm(host), 'token:token')
  if token then
    redis.call('SREM', K.token_vms(token), host)
  end
end
