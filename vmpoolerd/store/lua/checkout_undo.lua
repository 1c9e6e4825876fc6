-- Give back what a checkout handed out with nobody to answer.
--
-- A batch whose daemon got no answer in time (see Note [Unanswered
-- batches] in checkout.lua): batch_key is the batch's key, window how long
-- the "cancelled" mark stays.  Or, with no key, one request whose client
-- went away before its answer (Note [Clients that went away] in api_store.py):
-- hosts is the JSON list of its hosts, their pools read from their hashes.
-- A VM goes back to ready only if it is still running (nobody has handed
-- it back meanwhile).  Returns the number of VMs given back.
local handed = {}
if batch_key then
  local batch = redis.call('GET', batch_key)
  redis.call('SET', batch_key, 'cancelled', 'EX', window)
  if not batch or batch == 'cancelled' then
    return 0
  end
  handed = cjson.decode(batch)
else
  for _, host in ipairs(cjson.decode(hosts)) do
    local pool = redis.call('HGET', K.vm(host), 'template')
    if pool then
      handed[#handed + 1] = {pool, host}
    end
  end
end
local n = 0
for _, vm in ipairs(handed) do
  local pool, host = vm[1], vm[2]
  if redis.call('SMOVE', K.pool_set('running', pool), K.pool_set('ready', pool), host) == 1 then
    redis.call('HDEL', K.active(pool), host)
    unindex_vm(host)  -- Note [Token index] in preamble/vms.lua
    redis.call('HDEL', K.vm(host), 'checkout', 'token:token', 'token:user', 'token:user_dn',
      'lifetime')
    redis.call('DEL', K.empty(pool))
    n = n + 1
  end
end
return n
