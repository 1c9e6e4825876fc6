-- Reserve names for a request's clones, within task_limit (all clones)
-- and ondemand_clone_limit (on-demand clones), as clone_reserve.lua does
-- for pools (Note [Pending before cloning], Note [Clone reservations]);
-- only while the request has not ended.  Run fenced by the request's claim
-- (Note [On-demand requests] in ondemand_create.lua).  Each VM's hash
-- names its request and alias, and K.ODCREATE counts the clones started
-- (Note [On-demand records] in preamble/ondemand.lua).
--
-- ARGV[1]: id, ARGV[2]: alias, ARGV[3]: pool, ARGV[4]: task_limit, ARGV[5]:
-- ondemand_clone_limit, ARGV[6]: now (timestamp), ARGV[7]: now (epoch
-- seconds), ARGV[8]: the reservation's length (seconds), ARGV[9..]:
-- candidate names.  Returns the names reserved.  A new VM's hash has
-- 3.x's fields too: pool, pool_alias, and domain, as its pool's published
-- entry has it (Note [What a 3.x fleet reads] in published.py).
local id, alias, pool = ARGV[1], ARGV[2], ARGV[3]
local limit, od_limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local now, epoch, lease = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
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
for i = 9, #ARGV do
  if redis.call('HLEN', K.CLONING) >= limit
      or redis.call('SCARD', K.ODCLONING) >= od_limit then
    break
  end
  local host = ARGV[i]
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
