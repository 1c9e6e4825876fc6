-- Count one attempt against several limits at once, in fixed windows.
--
-- now (epoch seconds); limits: per limit, a subject (e.g.
-- "user:jdoe" or "address:10.0.0.1"), its limit (attempts per window) and
-- its window (seconds).  Every subject's count is raised, in the window
-- that holds now, and expires with it (vmpooler__ratelimit__<subject>__<n>).
-- Returns 0 when every count is within its limit, else the seconds until
-- the latest window that is over its limit ends (Retry-After).
local wait = 0
for i = 1, #limits, 3 do
  local subject, limit, window = limits[i], tonumber(limits[i + 1]), tonumber(limits[i + 2])
  local index = math.floor(now / window)
  local key = K.ratelimit(subject, index)
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, window + 1)
  end
  if count > limit then
    wait = math.max(wait, math.ceil((index + 1) * window - now))
  end
end
return wait
