-- Save a pool's folded demand history (Note [Counting demand] in
-- checkout.lua), if no other manager saved one since it was read.
--
-- The hash vmpooler__demand__<pool> holds the counts by hour (asked:<h>,
-- hit:<h>), the history "model" (JSON) and its "version".  The history is
-- replaced only if "version" is still the one read (ARGV[2]); then the
-- counts of hours before ARGV[4] go (they are folded, and past the window
-- of the hit rate shown).
--
-- KEYS[1]: the hash, ARGV[1]: the history, ARGV[2]: the version read,
-- ARGV[3]: seconds to keep the hash unused, ARGV[4]: the first hour kept,
-- ARGV[5]: what /status shows (JSON: the size decided and why, the hit
-- rate achieved), kept in the field "shown".
-- Returns 1 when saved, 0 when another manager got there first.
local key = KEYS[1]
if (redis.call('HGET', key, 'version') or '0') ~= ARGV[2] then
  return 0
end
redis.call('HSET', key, 'model', ARGV[1], 'version', tonumber(ARGV[2]) + 1, 'shown', ARGV[5])
local keep = tonumber(ARGV[4])
for _, field in ipairs(redis.call('HKEYS', key)) do
  local hour = tonumber(string.match(field, '^%a+:(%d+)$'))
  if hour and hour < keep then
    redis.call('HDEL', key, field)
  end
end
redis.call('EXPIRE', key, ARGV[3])
return 1
