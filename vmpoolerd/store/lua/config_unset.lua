-- Delete a pool's live override (Note [Live pool config] in
-- config_set.lua).  kind, pool, undo_set: the
-- undo set vmpooler keeps for the kind, or ''.  Returns 1 when there was
-- an override.
local deleted = redis.call('HDEL', K.config(kind), pool)
if deleted == 1 and undo_set ~= '' then
  redis.call('SADD', undo_set, pool)
end
return deleted
