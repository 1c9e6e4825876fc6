-- Change a running VM's lifetime and tags, and record the tags in the day's
-- history.
-- ARGV[1]: hostname, ARGV[2]: the day's tag history key,
-- ARGV[3]: JSON {"lifetime": "<hours>"?, "tags": {name: value}?}, ARGV[4]:
-- the VM's owner as the API checked it ('*': any; see Note [Owner checks]
-- in api/routes.py), ARGV[5]: seconds the history is kept, ARGV[6]: the
-- most tags a VM may hold.
--
-- Note [Changes to running VMs only]: only a checked-out VM may be
-- changed: a ready VM changed (a lifetime of years, tags) would be handed
-- so to the next user and never reclaimed.  A checkout starts a VM with
-- its pool's lifetime and no tags (checkout.lua), whatever it held.
--
-- Returns 1, or (nothing written) 0 when the VM is unknown, -2 when its
-- owner is no longer the one checked, -3 when it is not running, -4 when
-- it would hold more than ARGV[6] tags.
local host = ARGV[1]
local vm = 'vmpooler__vm__' .. host
local pool = redis.call('HGET', vm, 'template')
if not pool then
  return 0
end
local owner = redis.call('HGET', vm, 'token:user_dn') or redis.call('HGET', vm, 'token:user') or ''
if ARGV[4] ~= '*' and owner ~= ARGV[4] then
  return -2
end
if redis.call('SISMEMBER', 'vmpooler__running__' .. pool, host) == 0 then
  return -3
end
local change = cjson.decode(ARGV[3])
local tags = change.tags or {}
local count = 0
for _, field in ipairs(redis.call('HKEYS', vm)) do
  if string.sub(field, 1, 4) == 'tag:' and tags[string.sub(field, 5)] == nil then
    count = count + 1
  end
end
for _ in pairs(tags) do
  count = count + 1
end
if count > tonumber(ARGV[6]) then
  return -4
end
if change.lifetime then
  redis.call('HSET', vm, 'lifetime', change.lifetime)
end
for tag, value in pairs(tags) do
  redis.call('HSET', vm, 'tag:' .. tag, value)
  redis.call('HSET', ARGV[2], host .. ':' .. tag, value)
end
if next(tags) ~= nil then
  redis.call('EXPIRE', ARGV[2], ARGV[5])
end
return 1
