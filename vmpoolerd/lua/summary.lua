-- Daily history for /summary and /status.  ARGV: dates (YYYY-MM-DD).
-- Returns JSON, one entry per date: [boot, clone, tags] where boot and
-- clone are [count, total, min, max] of the day's durations and tags is
-- {tag: {value: count}}.  Summing here keeps a long range to one round
-- trip and a small answer.
local function durations(key)
  local n, total, lo, hi = 0, 0, 0, 0
  for _, v in ipairs(redis.call('HVALS', key)) do
    local x = tonumber(v)
    if x then
      if n == 0 or x < lo then lo = x end
      if n == 0 or x > hi then hi = x end
      n = n + 1
      total = total + x
    end
  end
  return {n, total, lo, hi}
end
local days = {}
for i, day in ipairs(ARGV) do
  local tags = {}
  local flat = redis.call('HGETALL', 'vmpooler__tag__' .. day)
  for j = 1, #flat, 2 do
    local tag = string.match(flat[j], '^[^:]*:(.+)$')
    if tag then
      tags[tag] = tags[tag] or {}
      tags[tag][flat[j + 1]] = (tags[tag][flat[j + 1]] or 0) + 1
    end
  end
  days[i] = {durations('vmpooler__boot__' .. day), durations('vmpooler__clone__' .. day), tags}
end
return cjson.encode(days)
