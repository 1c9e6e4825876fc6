-- Check out VMs, all or nothing, for a batch of independent requests.
--
-- requests: JSON {"requests": [{"entries": [[name, count, [pool, ...]],
-- ...], "now": "<timestamp>", "fields": {field: value}}, ...]}.  A name is
-- what the client asked for (a pool or an alias); its pools are tried in
-- the order given.  "fields" are written into each VM's hash beside
-- "checkout" (token:token, token:user, lifetime).
--
-- Note [All or nothing]: every count of a request is checked against the
-- ready sets (minus what this request already planned to take) before any
-- VM moves.  A request that cannot be met in full changes nothing.  VMs
-- move ready -> running with SPOP + SADD inside this one script, so no VM
-- is ever outside every set or in two, and no two callers can get the same
-- VM, however many daemons share this Redis.
--
-- Note [Unanswered batches]: each batch has a key of its own, batch_key,
-- holding for UNDO_WINDOW seconds the pools and hosts it handed out.  A
-- daemon that got no answer in time (and so answered its clients 503) runs
-- checkout_undo.lua on that key: the VMs go back to ready.  If the undo
-- comes first, it leaves "cancelled" there, and this script, arriving late,
-- hands out nothing.
--
-- Note [Checkouts and generations]: generation_id and generation_count are the generation
-- marker's id and count as the daemon last saw them ('' and 0: no check;
-- Note [Redis generations] in generation.py).  A Redis whose marker is
-- another, or whose count is below what the daemon saw, went back in time
-- under it: nothing is handed out ("doubt"), for the daemon's check to
-- hold what may have been handed out already.  A batch that hands VMs out
-- raises the count, so a restore from before it is noticed at the next
-- checkout.
--
-- Note [Counting demand]: every VM asked for is counted in its pool's
-- vmpooler__demand__<pool> hash, in the field asked:<hour> (hours since
-- the epoch, local: the batch's "hour"), and every VM handed out in
-- hit:<hour>, whether the request is met or not: a pool too small to meet
-- its demand must still see it.  A request not met counts each name's VMs
-- at its first pool, bounded (Note [Refusals counted]).  The manager
-- folds the hours that ended into the pool's history (demand.py) and
-- deletes their fields.
--
-- Note [Refusals counted]: a refused request costs its client nothing, so
-- what it may add to demand is bounded, else a loop of anonymous 100-VM
-- asks would drive every demand-sized pool to its size for weeks.  A
-- refusal adds to a pool's asked:<hour> at most the pool's size (its live
-- size if the config API set one, else the batch's "sizes"; a pool can
-- never hand out more at once), and only the first refusal of a client
-- for that pool in "refusal_window" seconds counts at all (a client
-- asking again is asking for the same VMs).  The client is the token's
-- owner (DN, else name); every request without a token is one client,
-- "anonymous", since addresses are cheap to change.  So in an hour,
-- refusals add at most size * 3600 / refusal_window per token owner and
-- as much for all anonymous clients together; checkouts served count in
-- full, as they cost the pool its VMs.
--
-- batch_key: the batch's key, undo_window: UNDO_WINDOW.  Returns JSON: {"results":
-- one entry per request, {name: [[host, pool], ...]} or false, "generation": the
-- count}; or "cancelled"; or "doubt".
if generation_id ~= '' then
  local marker = redis.call('HMGET', K.GENERATION, 'id', 'n')
  if marker[1] ~= generation_id or tonumber(marker[2] or '0') < tonumber(generation_count) then
    return cjson.encode('doubt')
  end
end
if not redis.call('SET', batch_key, '[]', 'NX', 'EX', undo_window) then
  return cjson.encode('cancelled')
end
local batch = cjson.decode(requests)
-- What the batch asked of each pool and was handed, written once per
-- pool at the end (Note [Counting demand]).
local demand = {}
local function count(pool, field, n)
  if batch.hour then
    demand[pool] = demand[pool] or {}
    demand[pool][field] = (demand[pool][field] or 0) + n
  end
end
local results = {}
local touched = {}
local handed = {}
for i, req in ipairs(batch.requests) do
  local taken, plan, ok = {}, {}, true
  for _, entry in ipairs(req.entries) do
    local name, remaining, pools = entry[1], entry[2], entry[3]
    for _, pool in ipairs(pools) do
      if remaining == 0 then break end
      local n = math.min(remaining,
        redis.call('SCARD', K.pool_set('ready', pool)) - (taken[pool] or 0))
      if n > 0 then
        taken[pool] = (taken[pool] or 0) + n
        plan[#plan + 1] = {name, pool, n}
        remaining = remaining - n
      end
    end
    if remaining > 0 then
      ok = false
      break
    end
  end
  if ok then
    local vms, now = {}, req.now
    for _, step in ipairs(plan) do
      local name, pool = step[1], step[2]
      vms[name] = vms[name] or {}
      for _, host in ipairs(redis.call('SPOP', K.pool_set('ready', pool), step[3])) do
        redis.call('SADD', K.pool_set('running', pool), host)
        redis.call('HSET', K.active(pool), host, now)
        local vm = K.vm(host)
        -- A VM starts its checkout with the lifetime it is given (in
        -- fields, else its pool's) and no tags, whatever was set on it
        -- before (Note [Changes to running VMs only] in vm_update.lua).
        for _, field in ipairs(redis.call('HKEYS', vm)) do
          if field == 'lifetime' or string.sub(field, 1, 4) == 'tag:' then
            redis.call('HDEL', vm, field)
          end
        end
        redis.call('HSET', vm, 'checkout', now)
        for field, value in pairs(req.fields) do
          redis.call('HSET', vm, field, value)
        end
        index_vm(host, req.fields['token:token'])  -- Note [Token index]
        table.insert(vms[name], {host, pool})
        handed[#handed + 1] = {pool, host}
      end
      touched[pool] = true
      count(pool, 'asked', step[3])
      count(pool, 'hit', step[3])
    end
    results[i] = vms
  else
    local client = req.fields['token:user_dn'] or req.fields['token:user'] or ''
    for _, entry in ipairs(req.entries) do
      local pool = entry[3][1]
      local size = tonumber(redis.call('HGET', K.config('poolsize'), pool) or '')
        or (batch.sizes or {})[pool]
      if batch.hour and redis.call('SET', K.demand_refused(pool, client), '1', 'NX', 'EX',
          batch.refusal_window or 600) then
        count(pool, 'asked', math.min(entry[2], size or entry[2]))
      end
    end
    results[i] = false
  end
end
for pool in pairs(touched) do
  if redis.call('SCARD', K.pool_set('ready', pool)) == 0 then
    redis.call('SET', K.empty(pool), 'true')
  end
  redis.call('PUBLISH', K.CHECKOUT_CHANNEL, pool)
end
for pool, fields in pairs(demand) do
  local key = K.demand(pool)
  for field, n in pairs(fields) do
    redis.call('HINCRBY', key, field .. ':' .. batch.hour, n)
  end
  redis.call('EXPIRE', key, 2592000)
end
local generation = 0
if #handed > 0 then
  redis.call('SET', batch_key, cjson.encode(handed), 'EX', undo_window)
  if generation_id ~= '' then
    generation = redis.call('HINCRBY', K.GENERATION, 'n', 1)
  end
end
return cjson.encode({results = results, generation = generation})
