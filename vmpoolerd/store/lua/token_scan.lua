-- One step of listing a user's tokens.  ARGV[1]: SCAN cursor, ARGV[2]: the
-- user's DN, ARGV[3]: their name (matched only by tokens that record no
-- DN).  Returns {next cursor, {{token, created, last}, ...}}.  Each call
-- looks at a bounded slice of the keyspace, so Redis is never blocked for
-- long.
local step = redis.call('SCAN', ARGV[1], 'MATCH', K.token('*'), 'COUNT', 1000)
local found = {}
for _, key in ipairs(step[2]) do
  local f = redis.call('HMGET', key, 'user', 'created', 'last', 'user_dn')
  if f[4] and f[4] == ARGV[2] or not f[4] and f[1] == ARGV[3] then
    found[#found + 1] = {string.sub(key, string.len(K.token('')) + 1), f[2] or '', f[3] or ''}
  end
end
return {step[1], found}
