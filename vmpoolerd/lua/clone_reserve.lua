-- Reserve names for new clones, within the global task limit.
--
-- Note [Pending before cloning]: a clone's name is in the pool's pending
-- set, with its hash, BEFORE its clone task starts, so that a crash at any
-- moment leaves nothing in vSphere that Redis does not know of.  The names
-- of clones in flight are in the hash vmpooler__cloning (name -> start,
-- epoch seconds), and vmpooler__tasks__clone is kept equal to its size.
-- Entries older than ARGV[4] seconds are a crashed daemon's: they are
-- dropped here, so the limit cannot leak away.
--
-- ARGV[1]: pool, ARGV[2]: task_limit, ARGV[3]: now (timestamp text),
-- ARGV[4]: stale after (seconds), ARGV[5]: now (epoch seconds),
-- ARGV[6..]: candidate names.  A candidate already known to Redis is
-- skipped.  Returns the names reserved.
local pool, limit, now, stale, epoch = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local flat = redis.call('HGETALL', 'vmpooler__cloning')
for i = 1, #flat, 2 do
  if epoch - tonumber(flat[i + 1]) > stale then
    redis.call('HDEL', 'vmpooler__cloning', flat[i])
  end
end
local reserved = {}
for i = 6, #ARGV do
  if redis.call('HLEN', 'vmpooler__cloning') >= limit then
    break
  end
  local host = ARGV[i]
  if redis.call('EXISTS', 'vmpooler__vm__' .. host) == 0 then
    redis.call('HSET', 'vmpooler__vm__' .. host, 'template', pool, 'clone', now)
    redis.call('SADD', 'vmpooler__pending__' .. pool, host)
    redis.call('HSET', 'vmpooler__cloning', host, epoch)
    reserved[#reserved + 1] = host
  end
end
redis.call('SET', 'vmpooler__tasks__clone', redis.call('HLEN', 'vmpooler__cloning'))
return reserved
