-- Queue disk or snapshot work for a running VM.
-- KEYS[1]: the VM's hash, KEYS[2]: the task set.
-- ARGV[1]: the member ("host:size", "host:snapshot"), ARGV[2]: a field the
-- VM's hash must have ("" for none), ARGV[3]: the VM's owner as the API
-- checked it ('*': any; see Note [Owner checks] in api/routes.py),
-- ARGV[4]: the most requests of this kind one VM may have waiting,
-- ARGV[5]: the most waiting in all.
-- Returns R.DONE (queued), R.NO_SUCH_VM, R.NO_SUCH_SNAPSHOT (the field is
-- missing), R.OTHER_OWNER (the owner is no longer the one checked),
-- R.NOT_RUNNING or R.TOO_MANY_TASKS (errors.VmChange).  Note [Changes to running VMs only] in vm_update.lua.
local host = string.sub(KEYS[1], string.len(K.vm('')) + 1)
local pool, refused = running_vm(host, ARGV[3])
if not pool then
  return refused
end
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return R.NO_SUCH_SNAPSHOT
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return R.DONE  -- asked for already
end
local waiting = redis.call('SCARD', KEYS[2])
if waiting >= tonumber(ARGV[5]) then
  return R.TOO_MANY_TASKS
end
local mine, prefix = 0, host .. ':'
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if string.sub(member, 1, string.len(prefix)) == prefix then
    mine = mine + 1
  end
end
if mine >= tonumber(ARGV[4]) then
  return R.TOO_MANY_TASKS
end
redis.call('SADD', KEYS[2], ARGV[1])
return R.DONE
