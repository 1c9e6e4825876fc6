-- Everything the pool manager needs to know of one pool, in one call.
-- pool: its name, epoch: now (epoch seconds).
-- Returns JSON {"vms": [[name, set, clone, checkout, lifetime, check,
-- ready], ...], "cloning": [name, ...], "empty": bool, "ondemand": [name,
-- ...]}: "ondemand" names the VMs of the pool that on-demand requests are
-- provisioning (Note [On-demand VMs] in ondemand_create.lua).  "cloning" leaves
-- out the reservations run out (a crashed daemon's: Note [Clone
-- reservations] in clone_reserve.lua), so that they do not take the slots
-- the manager plans with, and their pending VMs count as clones lost
-- (adopted instead if they reached vSphere); clone_reserve.lua drops them.
local vms = {}
for _, set in ipairs({'pending', 'ready', 'running', 'completed', 'discovered'}) do
  for _, host in ipairs(redis.call('SMEMBERS', K.pool_set(set, pool))) do
    local f = redis.call('HMGET', K.vm(host),
      'clone', 'checkout', 'lifetime', 'check', 'ready')
    vms[#vms + 1] = {host, set, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or ''}
  end
end
local cloning = clones_in_flight(epoch, false)
local empty = redis.call('EXISTS', K.empty(pool)) == 1
local ondemand = redis.call('SMEMBERS', K.ondemand(pool))
return cjson.encode({vms = vms, cloning = cloning, empty = empty, ondemand = ondemand})
