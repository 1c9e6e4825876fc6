-- Hand a whole on-demand request out to its requester, or nothing (Note
-- [All or nothing] in checkout.lua; Note [On-demand VMs] in
-- ondemand_create.lua): only if its ready VMs are exactly what it asked
-- for, each moves to its pool's running set with the requester's token,
-- as a checkout's would.
-- ARGV[1]: id, ARGV[2]: now (timestamp), ARGV[3]: seconds to keep the
-- request once answered.  Returns the hostnames ("pool:host,...") or false.
local id, now = ARGV[1], ARGV[2]
local key = K.odrequest(id)
local r = redis.call('HMGET', key, 'status', 'requested', 'token:token', 'token:user',
  'token:user_dn')
if r[1] ~= 'pending' or redis.call('SCARD', K.odpending(id)) > 0 then
  return false
end
local wanted = {}
for entry in string.gmatch(r[2], '[^,]+') do
  local _, pool, count = string.match(entry, '^(.*):([^:]+):(%d+)$')
  wanted[pool] = (wanted[pool] or 0) + tonumber(count)
end
local ready = redis.call('SMEMBERS', K.odready(id))
local pools = {}
for _, host in ipairs(ready) do
  local pool = redis.call('HGET', K.vm(host), 'template')
  pools[host] = pool
  wanted[pool] = (wanted[pool] or 0) - 1
end
for _, left in pairs(wanted) do
  if left ~= 0 then
    return false
  end
end
local handed = {}
for _, host in ipairs(ready) do
  local pool, vm = pools[host], K.vm(host)
  redis.call('SREM', K.ondemand(pool), host)
  redis.call('SADD', K.pool_set('running', pool), host)
  redis.call('HSET', K.active(pool), host, now)
  redis.call('HSET', vm, 'checkout', now)
  if r[3] then
    redis.call('HSET', vm, 'token:token', r[3], 'token:user', r[4])
    index_vm(host, r[3])  -- Note [Token index] in preamble/vms.lua
    if r[5] then
      redis.call('HSET', vm, 'token:user_dn', r[5])
    end
  end
  handed[#handed + 1] = pool .. ':' .. host
end
local hostnames = table.concat(handed, ',')
redis.call('DEL', K.odready(id), K.odclaim(id))
redis.call('HSET', key, 'status', 'ready', 'hostnames', hostnames)
redis.call('ZREM', K.PROVISIONING, id)
redis.call('EXPIRE', key, ARGV[3])
return hostnames
