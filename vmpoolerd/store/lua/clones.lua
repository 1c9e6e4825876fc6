-- The names of the clones in flight, in every pool (see clone_reserve.lua),
-- after moving the deadlines of this maintainer's own clones on.
--
-- Note [Clone leases]: an entry of vmpooler__cloning is a lease on one of
-- the task_limit slots, until its deadline.  The daemon running the clone
-- renews it twice every maintenance cycle, before and after the inventory
-- (pool_state.lua), for as long as the clone runs, however long vCenter
-- takes; only a crashed daemon's entries run out, and clone_reserve.lua
-- drops them.  A clone task that outlasts the pool's timeout thus keeps
-- its slot: no new clone is started beside it.  (A lease can still run out
-- under a live daemon if one inventory read alone outlasts it: at least
-- the pool's timeout, 15 minutes by default.)
--
-- ARGV[1]: the new deadline (epoch seconds), ARGV[2..]: the names this
-- maintainer has at work (clones, and destroys: those are not entries).
local deadline = ARGV[1]
for i = 2, #ARGV do
  if redis.call('HEXISTS', 'vmpooler__cloning', ARGV[i]) == 1 then
    redis.call('HSET', 'vmpooler__cloning', ARGV[i], deadline)
  end
end
return redis.call('HKEYS', 'vmpooler__cloning')
