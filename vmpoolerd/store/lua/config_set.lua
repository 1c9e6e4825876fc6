-- Set live overrides of one kind (the config API), all or none.
--
-- Note [Live pool config]: a pool's size, template and clone target may
-- be overridden through the API, in vmpooler 3.x's hashes
-- vmpooler__config__poolsize, __template and __clone_target (pool ->
-- value), so that every daemon sharing this Redis, vmpooler's included,
-- obeys the same values, across restarts.  Deleting an override
-- (config_unset.lua) puts the pool in vmpooler__pool__undo_size_override
-- or __undo_template_override, as vmpooler does, for its managers.
--
-- kind: poolsize, template or clone_target; settings: triples of
-- pool, new value, the value it has now when not overridden.  Returns the
-- pools whose live value changed.
local hash = K.config(kind)
local changed = {}
for i = 1, #settings, 3 do
  local pool, value, default = settings[i], settings[i + 1], settings[i + 2]
  local now = redis.call('HGET', hash, pool) or default
  if now ~= value then
    changed[#changed + 1] = pool
  end
  redis.call('HSET', hash, pool, value)
end
return changed
