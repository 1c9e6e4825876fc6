-- Delete a pool's live override (Note [Live pool config] in
-- config_set.lua).  ARGV[1]: the kind, ARGV[2]: the pool, ARGV[3]: the
-- undo set vmpooler keeps for the kind, or ''.  Returns 1 when there was
-- an override.
local deleted = redis.call('HDEL', K.config(ARGV[1]), ARGV[2])
if deleted == 1 and ARGV[3] ~= '' then
  redis.call('SADD', ARGV[3], ARGV[2])
end
return deleted
