-- An attempt counted by password_try.lua that was not a failure (Note
-- [Password guessing] in api/throttle.py): its count is taken back from
-- every bucket of its window (if the window has not ended); when the
-- password was right, the address is known for the user for ARGV[5]
-- seconds from now.
--
-- ARGV: the user (folded), the address group, the window n counted in,
-- "passed" or "unanswered", the seconds an address stays known.
local user, address, n, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for _, subject in ipairs({'password:pair:' .. user .. ':' .. address,
                          'password:address:' .. address, 'password:user:' .. user}) do
  local key = K.ratelimit(subject, n)
  if tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
if outcome == 'passed' then
  redis.call('SET', K.ratelimit('password:known:' .. user .. ':' .. address, 'known'), '1',
             'EX', tonumber(ARGV[5]))
end
return 0
