-- Counts for /status.  ARGV: pool names.
-- Returns {clones in flight, {ready, running, pending, completed, lastboot,
-- {kind, count, ...} of its failures, its last 5 failures (JSON), what its
-- demand says (JSON or ''), its clone pause (JSON or ''), the manager
-- holding its lease or ''} per pool, why Redis's state is in doubt or ''}.
local pools = {}
for i, pool in ipairs(ARGV) do
  pools[i] = {
    redis.call('SCARD', 'vmpooler__ready__' .. pool),
    redis.call('SCARD', 'vmpooler__running__' .. pool),
    redis.call('SCARD', 'vmpooler__pending__' .. pool),
    redis.call('SCARD', 'vmpooler__completed__' .. pool),
    redis.call('HGET', 'vmpooler__lastboot', pool) or '',
    redis.call('HGETALL', 'vmpooler__failure_counts__' .. pool),
    redis.call('LRANGE', 'vmpooler__failures__' .. pool, 0, 4),
    redis.call('HGET', 'vmpooler__demand__' .. pool, 'shown') or '',
    redis.call('GET', 'vmpooler__clone_pause__' .. pool) or '',
    redis.call('GET', 'vmpooler__lease__' .. pool) or '',
  }
end
local cloning = tonumber(redis.call('GET', 'vmpooler__tasks__clone') or '0') or 0
return {cloning, pools, redis.call('GET', 'vmpooler__doubtful') or ''}
