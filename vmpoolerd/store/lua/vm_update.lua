-- Change a running VM's lifetime and tags, and record the tags in the day's
-- history.
-- host: its name, tags_key: the day's tag history key,
-- change_json: {"lifetime": "<hours>"?, "tags": {name: value}?}, owner:
-- the VM's owner as the API checked it ('*': any; see Note [Owner checks]
-- in api/routes.py), history_seconds: how long the history is kept,
-- most_tags: the most tags a VM may hold.
--
-- Note [Changes to running VMs only]: only a checked-out VM may be
-- changed: a ready VM changed (a lifetime of years, tags) would be handed
-- so to the next user and never reclaimed.  A checkout starts a VM with
-- its pool's lifetime and no tags (checkout.lua), whatever it held.
--
-- Returns R.DONE, or (nothing written) R.NO_SUCH_VM, R.OTHER_OWNER (its
-- owner is no longer the one checked), R.NOT_RUNNING, or R.TOO_MANY_TAGS
-- (it would hold more than most_tags); R is errors.VmChange.
local pool, refused = running_vm(host, owner)
if not pool then
  return refused
end
local vm = K.vm(host)
local change = cjson.decode(change_json)
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
if count > most_tags then
  return R.TOO_MANY_TAGS
end
if change.lifetime then
  redis.call('HSET', vm, 'lifetime', change.lifetime)
end
for tag, value in pairs(tags) do
  redis.call('HSET', vm, 'tag:' .. tag, value)
  redis.call('HSET', tags_key, host .. ':' .. tag, value)
end
if next(tags) ~= nil then
  redis.call('EXPIRE', tags_key, history_seconds)
end
return R.DONE
