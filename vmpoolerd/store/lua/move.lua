-- One transition of the pool manager, applied only if the VM is still
-- where the manager saw it.
--
-- Note [Guarded moves]: between the manager's look at a pool and its
-- action, a client may have checked a ready VM out or handed a running one
-- back, and another daemon may have acted.  So a move out of a set happens
-- only if the VM is still in it (SREM said 1); otherwise nothing changes
-- and 0 is returned.
--
-- change: JSON {"host", "pool", "from": set or "", "to": set or "",
-- "fields": {field: value}, "history": [key, field, value] or absent,
-- "lastboot": timestamp or absent, "expire": seconds or absent}.
-- "expire" marks the VM destroyed: its hash is kept that long, and it
-- leaves the pool's active hash.  "unchanged": {field: value ('' absent)}
-- or absent.
--
-- Note [Lifetimes re-checked]: a running VM is completed when its lifetime
-- since checkout has passed, as the manager judged it from the "checkout"
-- and "lifetime" it read (pool_plan.py).  A PUT may extend the lifetime
-- (or a checkout given back and taken again restart it) between that read
-- and this move; so the expiry move carries both fields as read in
-- "unchanged", and is made only if the VM's hash still holds them: else
-- nothing changes, 0 is returned, and the next cycle judges the VM anew.
-- The rule (checkout + lifetime against now) stays in one place, the
-- planner; the script only checks that what it judged is still so.
local m = cjson.decode(change)
local vm = K.vm(m.host)
for field, value in pairs(m.unchanged or {}) do
  if (redis.call('HGET', vm, field) or '') ~= value then
    return 0
  end
end
if m.from ~= '' and redis.call('SREM', K.pool_set(m.from, m.pool), m.host) == 0 then
  return 0
end
if m.from == 'running' then
  unindex_vm(m.host)  -- Note [Token index] in preamble/vms.lua
end
if m.to ~= '' then
  redis.call('SADD', K.pool_set(m.to, m.pool), m.host)
end
for field, value in pairs(m.fields) do
  redis.call('HSET', vm, field, value)
end
if m.history then
  redis.call('HSET', m.history[1], m.history[2], m.history[3])
end
if m.lastboot then
  redis.call('HSET', K.LASTBOOT, m.pool, m.lastboot)
end
if m.expire then
  redis.call('HDEL', K.active(m.pool), m.host)
  redis.call('EXPIRE', vm, m.expire)
end
return 1
