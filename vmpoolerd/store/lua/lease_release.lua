-- A manager stopping gives back its leases at once, so that another takes
-- its pools over without waiting for them to run out (Note [Pool leases]
-- in manager/leases.py).  ARGV[1]: its id, ARGV[2..]: the pools it serves.
local id = ARGV[1]
for i = 2, #ARGV do
  if redis.call('GET', K.lease(ARGV[i])) == id then
    redis.call('DEL', K.lease(ARGV[i]))
  end
end
redis.call('DEL', K.manager(id))
redis.call('SREM', K.MANAGERS, id)
return 1
