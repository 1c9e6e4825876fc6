-- Reserve names for a request's clones, within task_limit (all clones)
-- and ondemand_clone_limit (on-demand clones), as clone_reserve.lua does
-- for pools (Note [Pending before cloning], Note [Clone reservations]); only
-- while the request is pending and this manager's (Note [On-demand VMs]
-- in ondemand_create.lua).
--
-- ARGV[1]: id, ARGV[2]: pool, ARGV[3]: task_limit, ARGV[4]:
-- ondemand_clone_limit, ARGV[5]: now (timestamp), ARGV[6]: now (epoch
-- seconds), ARGV[7]: the reservation's length (seconds), ARGV[8]: the manager's id,
-- ARGV[9..]: candidate names.  Returns the names reserved.
local id, pool = ARGV[1], ARGV[2]
local limit, od_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local now, epoch, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('GET', 'vmpooler__odclaim__' .. id) ~= ARGV[8]
    or redis.call('HGET', 'vmpooler__odrequest__' .. id, 'status') ~= 'pending' then
  return {}
end
local flat = redis.call('HGETALL', 'vmpooler__cloning')
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < epoch then
    redis.call('HDEL', 'vmpooler__cloning', flat[i])
  end
end
for _, host in ipairs(redis.call('SMEMBERS', 'vmpooler__odcloning')) do
  if redis.call('HEXISTS', 'vmpooler__cloning', host) == 0 then
    redis.call('SREM', 'vmpooler__odcloning', host)
  end
end
local reserved = {}
for i = 9, #ARGV do
  if redis.call('HLEN', 'vmpooler__cloning') >= limit
      or redis.call('SCARD', 'vmpooler__odcloning') >= od_limit then
    break
  end
  local host = ARGV[i]
  if redis.call('EXISTS', 'vmpooler__vm__' .. host) == 0 then
    redis.call('HSET', 'vmpooler__vm__' .. host, 'template', pool, 'clone', now,
      'request_id', id)
    redis.call('SADD', 'vmpooler__odpending__' .. id, host)
    redis.call('SADD', 'vmpooler__ondemand__' .. pool, host)
    redis.call('HSET', 'vmpooler__cloning', host, epoch + lease)
    redis.call('SADD', 'vmpooler__odcloning', host)
    reserved[#reserved + 1] = host
  end
end
redis.call('SET', 'vmpooler__tasks__clone', redis.call('HLEN', 'vmpooler__cloning'))
return reserved
