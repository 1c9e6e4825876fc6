-- Counts for /status.  ARGV: pool names.
-- Returns {clones in flight, {ready, running, pending, completed, lastboot}
-- per pool, why Redis's state is in doubt or ''}.
local pools = {}
for i, pool in ipairs(ARGV) do
  pools[i] = {
    redis.call('SCARD', 'vmpooler__ready__' .. pool),
    redis.call('SCARD', 'vmpooler__running__' .. pool),
    redis.call('SCARD', 'vmpooler__pending__' .. pool),
    redis.call('SCARD', 'vmpooler__completed__' .. pool),
    redis.call('HGET', 'vmpooler__lastboot', pool) or '',
  }
end
local cloning = tonumber(redis.call('GET', 'vmpooler__tasks__clone') or '0') or 0
return {cloning, pools, redis.call('GET', 'vmpooler__doubtful') or ''}
