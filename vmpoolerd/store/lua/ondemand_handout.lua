-- Hand a whole on-demand request out to its requester, or nothing (Note
-- [All or nothing] in checkout.lua; Note [On-demand VMs] in
-- ondemand_create.lua).  Run fenced by the request's claim.  Only when no
-- VM of it is still pending and, for each entry asked for, its VMs
-- already handed out (by vmpooler 3.x, which hands them out one by one)
-- and its ready ones are enough: each ready VM needed moves to its pool's
-- running set and the request's set (Note [On-demand records] in
-- preamble/ondemand.lua) with the requester's token, as a checkout's
-- would; ready VMs beyond need are destroyed.
-- id, now (timestamp), keep: seconds to keep the
-- request once answered.  Returns the hostnames ("alias:pool:host,...")
-- or false.
local key = K.odrequest(id)
local r = redis.call('HMGET', key, 'status', 'requested', 'token:token', 'token:user',
  'token:user_dn')
if (r[1] and r[1] ~= 'pending') or not r[2]
    or redis.call('SCARD', K.odpending(id)) > 0 then
  return false
end
local free = {}  -- the ready VMs by "alias:pool", then by pool
for _, host in ipairs(redis.call('SMEMBERS', K.odready(id))) do
  local vm = redis.call('HMGET', K.vm(host), 'template', 'pool_alias')
  free[#free + 1] = {host, vm[1] or '', vm[2] or ''}
end
local taken, chosen = {}, {}
local wanted = od_wanted(r[2])
for _, w in ipairs(wanted) do
  local need = w[3] - redis.call('SCARD', K.odvms(id, w[1], w[2]))
  for pass = 1, 2 do
    for _, vm in ipairs(free) do
      if need > 0 and not taken[vm[1]] and vm[2] == w[2] and (pass == 2 or vm[3] == w[1]) then
        taken[vm[1]] = true
        chosen[#chosen + 1] = {vm[1], w[2], w[1]}
        need = need - 1
      end
    end
  end
  if need > 0 then
    return false
  end
end
local handed = {}
for _, c in ipairs(chosen) do
  local host, pool, alias = c[1], c[2], c[3]
  local vm = K.vm(host)
  redis.call('SREM', K.ondemand(pool), host)
  redis.call('SADD', K.pool_set('running', pool), host)
  redis.call('SADD', K.odvms(id, alias, pool), host)
  redis.call('HSET', K.active(pool), host, now)
  redis.call('HSET', vm, 'checkout', now, 'pool_alias', alias)
  if r[3] then
    redis.call('HSET', vm, 'token:token', r[3], 'token:user', r[4])
    index_vm(host, r[3])  -- Note [Token index] in preamble/vms.lua
    if r[5] then
      redis.call('HSET', vm, 'token:user_dn', r[5])
    end
  end
  handed[#handed + 1] = alias .. ':' .. pool .. ':' .. host
end
for _, vm in ipairs(free) do
  if not taken[vm[1]] then
    od_retire(vm[1], nil)
  end
end
for _, w in ipairs(wanted) do
  redis.call('EXPIRE', K.odvms(id, w[1], w[2]), keep)
end
redis.call('DEL', K.odready(id), K.odclaim(id))
redis.call('HSET', key, 'status', 'ready')
redis.call('ZREM', K.PROVISIONING, id)
redis.call('ZREM', K.PROCESSING, id)
od_tasks(id)
redis.call('EXPIRE', key, keep)
return table.concat(handed, ',')
