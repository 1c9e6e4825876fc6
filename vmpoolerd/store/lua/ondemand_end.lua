-- End an on-demand request that failed, ran past its TTL or was deleted
-- (Note [On-demand VMs] in ondemand_create.lua): its VMs, provisioned or
-- handed out, go to their pools' completed sets, to be destroyed.
-- ARGV[1]: id, ARGV[2]: the new status ("failed" or "deleted"), ARGV[3]:
-- the message, ARGV[4]: seconds to keep the request.  Returns 0 for an
-- unknown id, -1 for a request that has already ended, else 1.
local id = ARGV[1]
local key = K.odrequest(id)
local r = redis.call('HMGET', key, 'status', 'hostnames')
if not r[1] then
  return 0
end
if r[1] == 'failed' or r[1] == 'deleted' then
  return -1
end
local function retire(host, from)
  local pool = redis.call('HGET', K.vm(host), 'template')
  if pool then
    redis.call('SREM', K.ondemand(pool), host)
    if from == '' or redis.call('SREM', K.pool_set(from, pool), host) == 1 then
      redis.call('SADD', K.pool_set('completed', pool), host)
    end
  end
end
for _, set in ipairs({K.odpending(id), K.odready(id)}) do
  for _, host in ipairs(redis.call('SMEMBERS', set)) do
    retire(host, '')
  end
end
if r[1] == 'ready' and r[2] then
  for entry in string.gmatch(r[2], '[^,]+') do
    retire(string.match(entry, ':(.*)$'), 'running')
  end
end
redis.call('DEL', K.odpending(id), K.odready(id), K.odclaim(id))
redis.call('HSET', key, 'status', ARGV[2], 'message', ARGV[3])
redis.call('ZREM', K.PROVISIONING, id)
redis.call('EXPIRE', key, ARGV[4])
return 1
