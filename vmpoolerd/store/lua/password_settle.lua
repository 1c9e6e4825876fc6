-- An attempt counted by password_try.lua that was not a failure (Note
-- [Password guessing] in api/throttle.py): its count is taken back from
-- every bucket of its window (if the window has not ended); when the
-- password was right, the address is known for the user for known_for
-- seconds from now.
--
-- user (folded), address (its group), window_index (the window n counted
-- in), outcome ("passed" or "unanswered"), known_for (seconds).
local n = window_index
for _, subject in ipairs({'password:pair:' .. user .. ':' .. address,
                          'password:address:' .. address, 'password:user:' .. user}) do
  local key = K.ratelimit(subject, n)
  if tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
if outcome == 'passed' then
  redis.call('SET', K.ratelimit('password:known:' .. user .. ':' .. address, 'known'), '1',
             'EX', known_for)
end
return 0
