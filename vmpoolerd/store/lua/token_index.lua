-- One step of building the token index for what is running already (Note
-- [Token index] in preamble/vms.lua): at most count members of the pool
-- pool's running set, from the SSCAN cursor.  Each running VM
-- with a token joins that token's index.  Returns the next cursor ('0':
-- done).  Idempotent, so any number of daemons may build at once; each
-- step is bounded, so Redis is never held for long.
local running = K.pool_set('running', pool)
local step = redis.call('SSCAN', running, cursor, 'COUNT', count)
for _, host in ipairs(step[2]) do
  index_vm(host, redis.call('HGET', K.vm(host), 'token:token'))
end
return step[1]
