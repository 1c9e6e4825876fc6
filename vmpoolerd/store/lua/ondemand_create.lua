-- Store a new on-demand request and queue it, as vmpooler 3.x's API does
-- (Note [On-demand records] in preamble/ondemand.lua): no status yet.
--
-- Note [On-demand requests]: a manager takes a queued request (K.PROVISIONING
-- -> K.PROCESSING, ondemand_claim.lua) and provisions it under its claim
-- K.odclaim(id) (30 s, renewed each cycle): two managers never work on one
-- request, and every write the manager makes to it is fenced by the claim
-- (Note [Pool leases]), so that a manager that lost it changes nothing of it.
--
-- Note [On-demand VMs]: the VMs vmpoolerd is provisioning for a request are
-- never in a pool's sets: they are in K.odpending(id) and K.odready(id),
-- and, so that their pool's maintainer neither counts nor discovers them,
-- in K.ondemand(pool).  Handing the request out moves them all to their
-- pools' running sets and the request's sets at once (ondemand_handout.lua);
-- a failed or deleted request moves them to their pools' completed sets,
-- for their maintainers to destroy.
--
-- Note [Outstanding on-demand requests]: a request is refused while its
-- asker (the token's user, else the client's address) has asker_bound
-- requests outstanding (queued and not ended), or everyone bound.
--
-- id, requested, epoch: now (epoch seconds), token, user, user_dn: the
-- user's DN, asker: "user:<name>" or "client:<address>", client: the
-- client's address, asker_bound: the asker's bound, bound: the bound for
-- all.  Returns 1; 0 when the id is
-- taken; -1 over the asker's bound; -2 over the bound for all.
local key = K.odrequest(id)
if redis.call('EXISTS', key) == 1 then
  return 0
end
local mine, all = 0, 0
for _, queue in ipairs({K.PROVISIONING, K.PROCESSING}) do
  for _, other in ipairs(redis.call('ZRANGE', queue, 0, -1)) do
    local r = redis.call('HMGET', K.odrequest(other), 'status', 'requested', 'token:user',
      'client')
    if r[2] and (not r[1] or r[1] == 'pending') then
      all = all + 1
      if (r[3] and ('user:' .. r[3]) or ('client:' .. (r[4] or ''))) == asker then
        mine = mine + 1
      end
    end
  end
end
if mine >= asker_bound then
  return -1
end
if all >= bound then
  return -2
end
redis.call('HSET', key, 'requested', requested)
if token ~= '' then
  redis.call('HSET', key, 'token:token', token, 'token:user', user)
  if user_dn ~= '' then
    redis.call('HSET', key, 'token:user_dn', user_dn)
  end
else
  redis.call('HSET', key, 'client', client)
end
redis.call('ZADD', K.PROVISIONING, epoch, id)
-- Wake the managers (no pool is named ":ondemand").
redis.call('PUBLISH', K.CHECKOUT_CHANNEL, K.ONDEMAND_WAKEUP)
return 1
