-- Reserve names for a request's clones, within task_limit (all clones)
-- and ondemand_clone_limit (on-demand clones), as clone_reserve.lua does
-- for pools (Note [Pending before cloning], Note [Clone reservations]);
-- only while the request has not ended.  Run fenced by the request's claim
-- (Note [On-demand requests] in ondemand_create.lua).  Each VM's hash
-- names its request and alias, and K.ODCREATE counts the clones started
-- (Note [On-demand records] in preamble/ondemand.lua).
--
-- id, alias, pool, limit: task_limit, od_limit: ondemand_clone_limit,
-- now (timestamp), epoch: now (epoch seconds), lease: the reservation's
-- length (seconds), names:
-- candidate names.  Returns the names reserved.  A new VM's hash has
-- 3.x's fields too: pool, pool_alias, and domain, as its pool's published
-- entry has it (Note [What a 3.x fleet reads] in published.py).
local status = redis.call('HGET', K.odrequest(id), 'status')
if status and status ~= 'pending' then
  return {}
end
clones_in_flight(epoch, true)
for _, host in ipairs(redis.call('SMEMBERS', K.ODCLONING)) do
  if redis.call('HEXISTS', K.CLONING, host) == 0 then
    redis.call('SREM', K.ODCLONING, host)
  end
end
local domain = redis.call('HGET', K.pool_config(pool), 'domain') or ''
local reserved = {}
for _, host in ipairs(names) do
  if redis.call('HLEN', K.CLONING) >= limit
      or redis.call('SCARD', K.ODCLONING) >= od_limit then
    break
  end
  if redis.call('EXISTS', K.vm(host)) == 0 then
    redis.call('HSET', K.vm(host), 'template', pool, 'pool', pool, 'clone', now,
      'request_id', id, 'pool_alias', alias)
    if domain ~= '' then
      redis.call('HSET', K.vm(host), 'domain', domain)
    end
    redis.call('SADD', K.odpending(id), host)
    redis.call('SADD', K.ondemand(pool), host)
    redis.call('HSET', K.CLONING, host, epoch + lease)
    redis.call('SADD', K.ODCLONING, host)
    reserved[#reserved + 1] = host
  end
end
if #reserved > 0 then
  od_tasks(id, alias, pool, -#reserved, epoch)
end
count_clones()
redis.call('SET', K.tasks('ondemandclone'), redis.call('SCARD', K.ODCLONING))
return reserved
