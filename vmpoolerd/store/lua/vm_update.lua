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
-- Returns R.DONE, or (nothing written) R.NO_SUCH_VM, R.OTHER_OWNER (its
-- owner is no longer the one checked), R.NOT_RUNNING, or R.TOO_MANY_TAGS
-- (it would hold more than ARGV[6]); R is errors.VmChange.
local host = ARGV[1]
local pool, refused = running_vm(host, ARGV[4])
if not pool then
  return refused
end
local vm = K.vm(host)
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
  return R.TOO_MANY_TAGS
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
return R.DONE
