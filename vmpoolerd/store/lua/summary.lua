-- Daily history for /summary and /status.  what: "all", or "clone"
-- for clone durations alone (/status); dates: the days (YYYY-MM-DD).
-- Returns JSON, one entry per date: [boot, clone, tags] where boot and
-- clone are [count, total, min, max] of the day's durations and tags is
-- {tag: {value: count}}.  Summing here keeps the answer small; the caller
-- asks for a month at a time, so that no call holds Redis for long.
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
local function tags_of(day)
  local tags = {}
  local flat = redis.call('HGETALL', K.tag(day))
  for j = 1, #flat, 2 do
    local tag = string.match(flat[j], '^[^:]*:(.+)$')
    if tag then
      tags[tag] = tags[tag] or {}
      tags[tag][flat[j + 1]] = (tags[tag][flat[j + 1]] or 0) + 1
    end
  end
  return tags
end
local days = {}
local all = what == 'all'
for i, day in ipairs(dates) do
  local clone = durations(K.clone(day))
  if all then
    days[i] = {durations(K.boot(day)), clone, tags_of(day)}
  else
    days[i] = {{0, 0, 0, 0}, clone, {}}
  end
end
return cjson.encode(days)
