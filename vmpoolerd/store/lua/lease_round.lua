-- One round of a manager's lease timer (Note [Pool leases] in
-- manager/leases.py), atomic: the manager says it is alive, renews the
-- leases it holds, gives back what it holds beyond its share, takes free
-- pools up to its share, and renews the reservations of its clones in
-- flight (Note [Clone reservations] in clone_reserve.lua).
--
-- Its share is the pools it serves divided by the managers alive, the
-- remainder going one each to the first managers by id, so that the shares
-- add up to the pools: a manager that joins gets pools given back by the
-- others, one that dies leaves its pools free when its leases run out.
--
-- id: the manager's id, ttl: the lease (milliseconds), deadline: the
-- reservations' new deadline (epoch seconds), pools: the pools it serves,
-- reserved: the names of its clones in flight.  Returns the pools it holds.  A manager serving no
-- pool (one stopping: lease_release.lua) is not counted alive.
local n = #pools
if n > 0 then
  redis.call('SET', K.manager(id), '1', 'PX', ttl)
  redis.call('SADD', K.MANAGERS, id)
end
local alive = {}
for _, other in ipairs(redis.call('SMEMBERS', K.MANAGERS)) do
  if redis.call('EXISTS', K.manager(other)) == 1 then
    alive[#alive + 1] = other
  else
    redis.call('SREM', K.MANAGERS, other)
  end
end
table.sort(alive)
local share = 0
for rank, other in ipairs(alive) do
  if other == id then
    share = math.floor(n / #alive)
    if rank <= n % #alive then
      share = share + 1
    end
  end
end
local held, free = {}, {}
for _, pool in ipairs(pools) do
  local holder = redis.call('GET', K.lease(pool))
  if holder == id then
    held[#held + 1] = pool
  elseif not holder then
    free[#free + 1] = pool
  end
end
while #held > share do
  redis.call('DEL', K.lease(table.remove(held)))
end
for _, pool in ipairs(free) do
  if #held >= share then
    break
  end
  held[#held + 1] = pool
end
for _, pool in ipairs(held) do
  redis.call('SET', K.lease(pool), id, 'PX', ttl)
end
for _, host in ipairs(reserved) do
  if redis.call('HEXISTS', K.CLONING, host) == 1 then
    redis.call('HSET', K.CLONING, host, deadline)
  end
end
return held
