-- Drain a pool: its ready and pending VMs -> completed (to be destroyed
-- and replaced), once per template change or reset request.
--
-- Note [Draining once]: every daemon's maintainer sees the same change;
-- the first to run this script drains, the others find it done: the
-- template the pool's VMs are cloned from is recorded in
-- vmpooler__pool__template_cloned and compared here, and a reset request
-- leaves vmpooler__poolreset here.
--
-- pool, seen: the template recorded when the maintainer looked ('' for
-- none), template: the template to record, reset: '1' for
-- a reset.  Returns the VMs drained, or -1 when another daemon got there
-- first.
if reset == '1' then
  if redis.call('SREM', K.POOL_RESET, pool) == 0 then
    return -1
  end
elseif (redis.call('HGET', K.TEMPLATE_CLONED, pool) or '') ~= seen then
  return -1
end
redis.call('HSET', K.TEMPLATE_CLONED, pool, template)
redis.call('SREM', K.UNDO_TEMPLATE_OVERRIDE, pool)
local drained = 0
for _, set in ipairs({'ready', 'pending'}) do
  for _, host in ipairs(redis.call('SMEMBERS', K.pool_set(set, pool))) do
    redis.call('SMOVE', K.pool_set(set, pool), K.pool_set('completed', pool), host)
    drained = drained + 1
  end
end
redis.call('SET', K.empty(pool), 'true')
return drained
