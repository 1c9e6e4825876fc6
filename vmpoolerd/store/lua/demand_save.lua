-- Save a pool's folded demand history (Note [Counting demand] in
-- checkout.lua), if no other manager saved one since it was read.
--
-- The hash vmpooler__demand__<pool> holds the counts by hour (asked:<h>,
-- hit:<h>), the history "model" (JSON) and its "version".  The history is
-- replaced only if "version" is still the one read (version); then the
-- counts of hours before keep_from go (they are folded, and past the window
-- of the hit rate shown).
--
-- key: the hash, model: the history, version: the version read,
-- keep_seconds: seconds to keep the hash unused, keep_from: the first hour
-- kept, shown: what /status shows (JSON: the size decided and why, the hit
-- rate achieved), kept in the field "shown".
-- Returns 1 when saved, 0 when another manager got there first.
if (redis.call('HGET', key, 'version') or '0') ~= version then
  return 0
end
redis.call('HSET', key, 'model', model, 'version', tonumber(version) + 1, 'shown', shown)
for _, field in ipairs(redis.call('HKEYS', key)) do
  local hour = tonumber(string.match(field, '^%a+:(%d+)$'))
  if hour and hour < keep_from then
    redis.call('HDEL', key, field)
  end
end
redis.call('EXPIRE', key, keep_seconds)
return 1
