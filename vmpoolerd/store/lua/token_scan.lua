-- One step of listing a user's tokens.  cursor: SCAN cursor, dn: the
-- user's DN, user: their name (matched only by tokens that record no
-- DN).  Returns {next cursor, {{token, created, last}, ...}}.  Each call
-- looks at a bounded slice of the keyspace, so Redis is never blocked for
-- long.
local step = redis.call('SCAN', cursor, 'MATCH', K.token('*'), 'COUNT', 1000)
local found = {}
for _, key in ipairs(step[2]) do
  local f = redis.call('HMGET', key, 'user', 'created', 'last', 'user_dn')
  if f[4] and f[4] == dn or not f[4] and f[1] == user then
    found[#found + 1] = {string.sub(key, string.len(K.token('')) + 1), f[2] or '', f[3] or ''}
  end
end
return {step[1], found}
