-- The running VMs checked out with a token, as {host, pool} pairs, in the
-- order of the pools given, then by name.  token, pools: the
-- pools to look in.
--
-- Reads the token's index only (Note [Token index] in preamble/vms.lua):
-- its cost is the token's VMs, not the fleet's.  A member no longer
-- running, or no longer that token's, leaves the index; one running in a
-- pool not given is left alone (not shown).
local index = K.token_vms(token)
local order = {}
for i, pool in ipairs(pools) do order[pool] = i end
local hosts = {}
for _, host in ipairs(redis.call('SMEMBERS', index)) do
  local f = redis.call('HMGET', K.vm(host), 'template', 'token:token')
  local pool = f[1]
  if not pool or f[2] ~= token
      or redis.call('SISMEMBER', K.pool_set('running', pool), host) == 0 then
    redis.call('SREM', index, host)
  elseif order[pool] then
    hosts[#hosts + 1] = {host, pool}
  end
end
table.sort(hosts, function(a, b)
  if a[2] ~= b[2] then return order[a[2]] < order[b[2]] end
  return a[1] < b[1]
end)
return hosts
