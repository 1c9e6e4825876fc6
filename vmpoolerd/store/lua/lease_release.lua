-- A manager stopping gives back its leases at once, so that another takes
-- its pools over without waiting for them to run out (Note [Pool leases]
-- in manager/leases.py).  id: its id, pools: the pools it serves.
for _, pool in ipairs(pools) do
  if redis.call('GET', K.lease(pool)) == id then
    redis.call('DEL', K.lease(pool))
  end
end
redis.call('DEL', K.manager(id))
redis.call('SREM', K.MANAGERS, id)
return 1
