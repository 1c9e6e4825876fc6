-- Reserve names for new clones, within the pool's size and the global
-- task limit.
--
-- Note [Pending before cloning]: a clone's name is in the pool's pending
-- set, with its hash, BEFORE its clone task starts, so that a crash at any
-- moment leaves nothing in vSphere that Redis does not know of.  The names
-- of clones in flight are in the hash vmpooler__cloning, and
-- vmpooler__tasks__clone is kept equal to its size.
--
-- Note [Clone reservations]: an entry of vmpooler__cloning (name -> the
-- epoch second it runs out) is a short lease of the daemon running the
-- clone on one of the task_limit slots.  That daemon's lease timer renews
-- it every few seconds for as long as the clone runs, however long vCenter
-- takes (lease_round.lua); only a dead (or cut off) daemon's entries run
-- out, within seconds of its death.  Such an entry is dropped here, so the
-- limit cannot leak away, and pool_state.lua leaves it out: its pending VM
-- is then a clone lost when it is not in vSphere (its place is freed), and
-- is adopted, readied as any pending VM, when it is.
--
-- Note [Daemons sharing a pool]: every daemon's maintainer may plan the
-- same deficit at the same moment; the count is checked again here, where
-- it is atomic, so that a pool is never filled past its size.
--
-- pool, limit: task_limit, size: the pool's size, now (timestamp text),
-- epoch: now (epoch seconds), lease: the reservation's length (seconds),
-- names: candidate names.  A candidate already known
-- to Redis is skipped.  Returns the names reserved.  A new VM's hash has
-- 3.x's fields too: pool and domain (Note [What a 3.x fleet reads] in
-- published.py).
local domain = redis.call('HGET', K.pool_config(pool), 'domain') or ''
clones_in_flight(epoch, true)
local have = redis.call('SCARD', K.pool_set('ready', pool))
  + redis.call('SCARD', K.pool_set('pending', pool))
local reserved = {}
for _, host in ipairs(names) do
  if have >= size or redis.call('HLEN', K.CLONING) >= limit then
    break
  end
  if redis.call('EXISTS', K.vm(host)) == 0 then
    redis.call('HSET', K.vm(host), 'template', pool, 'clone', now, 'pool', pool)
    if domain ~= '' then
      redis.call('HSET', K.vm(host), 'domain', domain)
    end
    redis.call('SADD', K.pool_set('pending', pool), host)
    redis.call('HSET', K.CLONING, host, epoch + lease)
    reserved[#reserved + 1] = host
    have = have + 1
  end
end
count_clones()
return reserved
