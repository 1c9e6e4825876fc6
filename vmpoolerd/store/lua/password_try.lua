-- A password attempt, before the directory is asked (Note [Password
-- guessing] in api/throttle.py): refused if one of its buckets is full,
-- else counted in every bucket, as a failure until password_settle.lua
-- takes it back (the bind passed, or the directory did not answer).
--
-- now (epoch seconds), user (folded), address (its group), the limits
-- per_pair (user, address), per_address and per_user, and window
-- (seconds).  Buckets are fixed windows (vmpooler__ratelimit__<subject>__<n>),
-- expiring with them.  An address known for the user (password:known:...,
-- set by password_settle.lua) is held by its (user, address) bucket alone.
-- Returns {wait, n}: wait 0 and the window n counted in, or the seconds
-- until the fullest bucket's window ends (nothing counted).
local n = math.floor(now / window)
local buckets = {
  {'password:pair:' .. user .. ':' .. address, per_pair},
  {'password:address:' .. address, per_address},
  {'password:user:' .. user, per_user},
}
local known = redis.call('EXISTS', K.ratelimit('password:known:' .. user .. ':' .. address, 'known')) == 1
local checked = known and 1 or #buckets
for i = 1, checked do
  local count = tonumber(redis.call('GET', K.ratelimit(buckets[i][1], n)) or '0')
  if count >= buckets[i][2] then
    return {math.max(math.ceil((n + 1) * window - now), 1), n}
  end
end
for _, bucket in ipairs(buckets) do
  local key = K.ratelimit(bucket[1], n)
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, window + 1)
  end
end
return {0, n}
