-- Use a token: record when, and return {user, dn} (dn '' for a token made
-- before owners were directory entries), or false when unknown.
-- KEYS[1]: the token's hash, ARGV[1]: now.
local found = redis.call('HMGET', KEYS[1], 'user', 'user_dn')
if not found[1] then
  return false
end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
return {found[1], found[2] or ''}
