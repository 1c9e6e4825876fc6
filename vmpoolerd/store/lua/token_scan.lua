-- One step of listing a user's tokens.  ARGV[1]: SCAN cursor, ARGV[2]: user.
-- Returns {next cursor, {{token, created, last}, ...}}.  Each call looks at
-- a bounded slice of the keyspace, so Redis is never blocked for long.
local step = redis.call('SCAN', ARGV[1], 'MATCH', 'vmpooler__token__*', 'COUNT', 1000)
local found = {}
for _, key in ipairs(step[2]) do
  local f = redis.call('HMGET', key, 'user', 'created', 'last')
  if f[1] == ARGV[2] then
    found[#found + 1] = {string.sub(key, 18), f[2] or '', f[3] or ''}
  end
end
return {step[1], found}
