-- Change a VM's lifetime and tags, and record the tags in the day's history.
-- ARGV[1]: hostname, ARGV[2]: the day's tag history key,
-- ARGV[3]: JSON {"lifetime": "<hours>"?, "tags": {name: value}?}, ARGV[4]:
-- the VM's owner as the API checked it ('*': any; see Note [Owner checks]
-- in api/routes.py).  Returns 1, or (nothing written) 0 when the VM is unknown,
-- -2 when its owner is no longer the one checked.
local host = ARGV[1]
local vm = 'vmpooler__vm__' .. host
if redis.call('EXISTS', vm) == 0 then
  return 0
end
if ARGV[4] ~= '*' and (redis.call('HGET', vm, 'token:user') or '') ~= ARGV[4] then
  return -2
end
local change = cjson.decode(ARGV[3])
if change.lifetime then
  redis.call('HSET', vm, 'lifetime', change.lifetime)
end
for tag, value in pairs(change.tags or {}) do
  redis.call('HSET', vm, 'tag:' .. tag, value)
  redis.call('HSET', ARGV[2], host .. ':' .. tag, value)
end
return 1
