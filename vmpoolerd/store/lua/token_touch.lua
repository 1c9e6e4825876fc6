-- Use a token: record when, and return {user, dn} (dn '' for a token made
-- before owners were directory entries), or false when unknown.
-- token_key: the token's hash, now.
local found = redis.call('HMGET', token_key, 'user', 'user_dn')
if not found[1] then
  return false
end
redis.call('HSET', token_key, 'last', now)
return {found[1], found[2] or ''}
