-- Drain a pool: its ready and pending VMs -> completed (to be destroyed
-- and replaced), once per template change or reset request.
--
-- Note [Draining once]: every daemon's maintainer sees the same change;
-- the first to run this script drains, the others find it done: the
-- template the pool's VMs are cloned from is recorded in
-- vmpooler__pool__template_cloned and compared here, and a reset request
-- leaves vmpooler__poolreset here.
--
-- ARGV[1]: pool, ARGV[2]: the template recorded when the maintainer
-- looked ('' for none), ARGV[3]: the template to record, ARGV[4]: '1' for
-- a reset.  Returns the VMs drained, or -1 when another daemon got there
-- first.
local pool, seen, template, reset = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
if reset then
  if redis.call('SREM', 'vmpooler__poolreset', pool) == 0 then
    return -1
  end
elseif (redis.call('HGET', 'vmpooler__pool__template_cloned', pool) or '') ~= seen then
  return -1
end
redis.call('HSET', 'vmpooler__pool__template_cloned', pool, template)
redis.call('SREM', 'vmpooler__pool__undo_template_override', pool)
local drained = 0
for _, set in ipairs({'ready', 'pending'}) do
  for _, host in ipairs(redis.call('SMEMBERS', 'vmpooler__' .. set .. '__' .. pool)) do
    redis.call('SMOVE', 'vmpooler__' .. set .. '__' .. pool, 'vmpooler__completed__' .. pool, host)
    drained = drained + 1
  end
end
redis.call('SET', 'vmpooler__empty__' .. pool, 'true')
return drained
