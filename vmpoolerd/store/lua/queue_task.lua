-- Queue disk or snapshot work for a running VM.
-- vm_key: the VM's hash, tasks: the task set.
-- member ("host:size", "host:snapshot"), needs_field: a field the
-- VM's hash must have ("" for none), owner: the VM's owner as the API
-- checked it ('*': any; see Note [Owner checks] in api/routes.py),
-- per_vm: the most requests of this kind one VM may have waiting,
-- most: the most waiting in all.
-- Returns R.DONE (queued), R.NO_SUCH_VM, R.NO_SUCH_SNAPSHOT (the field is
-- missing), R.OTHER_OWNER (the owner is no longer the one checked),
-- R.NOT_RUNNING or R.TOO_MANY_TASKS (errors.VmChange).  Note [Changes to running VMs only] in vm_update.lua.
local host = string.sub(vm_key, string.len(K.vm('')) + 1)
local pool, refused = running_vm(host, owner)
if not pool then
  return refused
end
if needs_field ~= '' and redis.call('HEXISTS', vm_key, needs_field) == 0 then
  return R.NO_SUCH_SNAPSHOT
end
if redis.call('SISMEMBER', tasks, member) == 1 then
  return R.DONE  -- asked for already
end
local waiting = redis.call('SCARD', tasks)
if waiting >= most then
  return R.TOO_MANY_TASKS
end
local mine, prefix = 0, host .. ':'
for _, member in ipairs(redis.call('SMEMBERS', tasks)) do
  if string.sub(member, 1, string.len(prefix)) == prefix then
    mine = mine + 1
  end
end
if mine >= per_vm then
  return R.TOO_MANY_TASKS
end
redis.call('SADD', tasks, member)
return R.DONE
