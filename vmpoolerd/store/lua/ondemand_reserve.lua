-- Reserve names for a request's clones, within task_limit (all clones)
-- and ondemand_clone_limit (on-demand clones), as clone_reserve.lua does
-- for pools (Note [Pending before cloning], Note [Clone reservations]); only
-- while the request is pending and this manager's (Note [On-demand VMs]
-- in ondemand_create.lua).
--
-- ARGV[1]: id, ARGV[2]: pool, ARGV[3]: task_limit, ARGV[4]:
-- ondemand_clone_limit, ARGV[5]: now (timestamp), ARGV[6]: now (epoch
-- seconds), ARGV[7]: the reservation's length (seconds), ARGV[8]: the manager's id,
-- ARGV[9..]: candidate names.  Returns the names reserved.  A new VM's
-- hash has 3.x's fields too: pool, domain, and pool_alias, the name its
-- request asked the pool by (Note [What a 3.x fleet reads] in published.py).
local id, pool = ARGV[1], ARGV[2]
local limit, od_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local now, epoch, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('GET', K.odclaim(id)) ~= ARGV[8]
    or redis.call('HGET', K.odrequest(id), 'status') ~= 'pending' then
  return {}
end
clones_in_flight(epoch, true)
for _, host in ipairs(redis.call('SMEMBERS', K.ODCLONING)) do
  if redis.call('HEXISTS', K.CLONING, host) == 0 then
    redis.call('SREM', K.ODCLONING, host)
  end
end
local domain = redis.call('HGET', K.pool_config(pool), 'domain') or ''
local alias = pool
for entry in string.gmatch(redis.call('HGET', K.odrequest(id), 'requested') or '', '[^,]+') do
  local asked, its_pool = string.match(entry, '^([^:]*):([^:]*):')
  if its_pool == pool then
    alias = asked
    break
  end
end
local reserved = {}
for i = 9, #ARGV do
  if redis.call('HLEN', K.CLONING) >= limit
      or redis.call('SCARD', K.ODCLONING) >= od_limit then
    break
  end
  local host = ARGV[i]
  if redis.call('EXISTS', K.vm(host)) == 0 then
    redis.call('HSET', K.vm(host), 'template', pool, 'clone', now,
      'request_id', id, 'pool', pool, 'pool_alias', alias)
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
count_clones()
return reserved
