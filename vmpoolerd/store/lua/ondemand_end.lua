-- End an on-demand request that failed, ran past its TTL or was deleted
-- (Note [On-demand VMs] in ondemand_create.lua): its VMs, provisioned or
-- handed out, go to their pools' completed sets, to be destroyed.
-- ARGV[1]: id, ARGV[2]: the new status ("failed" or "deleted"), ARGV[3]:
-- the message, ARGV[4]: seconds to keep the request.  Returns 0 for an
-- unknown id, -1 for a request that has already ended, else 1.
local id = ARGV[1]
local key = 'vmpooler__odrequest__' .. id
local r = redis.call('HMGET', key, 'status', 'hostnames')
if not r[1] then
  return 0
end
if r[1] == 'failed' or r[1] == 'deleted' then
  return -1
end
local function retire(host, from)
  local pool = redis.call('HGET', 'vmpooler__vm__' .. host, 'template')
  if pool then
    redis.call('SREM', 'vmpooler__ondemand__' .. pool, host)
    if from == '' or redis.call('SREM', 'vmpooler__' .. from .. '__' .. pool, host) == 1 then
      redis.call('SADD', 'vmpooler__completed__' .. pool, host)
    end
  end
end
for _, set in ipairs({'vmpooler__odpending__' .. id, 'vmpooler__odready__' .. id}) do
  for _, host in ipairs(redis.call('SMEMBERS', set)) do
    retire(host, '')
  end
end
if r[1] == 'ready' and r[2] then
  for entry in string.gmatch(r[2], '[^,]+') do
    retire(string.match(entry, ':(.*)$'), 'running')
  end
end
redis.call('DEL', 'vmpooler__odpending__' .. id, 'vmpooler__odready__' .. id,
  'vmpooler__odclaim__' .. id)
redis.call('HSET', key, 'status', ARGV[2], 'message', ARGV[3])
redis.call('ZREM', 'vmpooler__provisioning__request', id)
redis.call('EXPIRE', key, ARGV[4])
return 1
