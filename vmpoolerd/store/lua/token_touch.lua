-- Use a token: record when, and return its user (false when unknown).
-- KEYS[1]: the token's hash, ARGV[1]: now.
local user = redis.call('HGET', KEYS[1], 'user')
if not user then
  return false
end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
return user
