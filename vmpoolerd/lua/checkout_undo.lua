-- Give back what a checkout batch handed out, when its daemon got no answer
-- in time (see Note [Unanswered batches] in checkout.lua).
-- KEYS[1]: the batch's key, ARGV[1]: how long the "cancelled" mark stays.
-- A VM goes back to ready only if it is still running (nobody has handed
-- it back meanwhile).  Returns the number of VMs given back.
local handed = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'cancelled', 'EX', ARGV[1])
if not handed or handed == 'cancelled' then
  return 0
end
local n = 0
for _, vm in ipairs(cjson.decode(handed)) do
  local pool, host = vm[1], vm[2]
  if redis.call('SMOVE', 'vmpooler__running__' .. pool, 'vmpooler__ready__' .. pool, host) == 1 then
    redis.call('HDEL', 'vmpooler__active__' .. pool, host)
    redis.call('HDEL', 'vmpooler__vm__' .. host, 'checkout', 'token:token', 'token:user',
      'lifetime')
    redis.call('DEL', 'vmpooler__empty__' .. pool)
    n = n + 1
  end
end
return n
