-- An operator adopts what vSphere holds after a doubt (Note [Redis
-- generations] in generation.py): every VM held in a pool's discovered set
-- becomes running, checked out now, so that whoever may be using it keeps
-- it for its lifetime; then it is reclaimed as any running VM.  The doubt
-- ends.
--
-- Note [Adopted owners]: a VM whose hash still names its owner (token:token,
-- token:user, token:user_dn) keeps them, its lifetime too, and joins its
-- token's index (Note [Token index] in preamble/vms.lua): its owner alone
-- may change or delete it, as before the doubt.  One whose hash names none
-- is checked out to nobody, with its pool's lifetime.
--
-- now (timestamp), pools: the configured pools.
-- Returns the number of VMs adopted.
local adopted = 0
for _, pool in ipairs(pools) do
  local held = K.pool_set('discovered', pool)
  for _, host in ipairs(redis.call('SMEMBERS', held)) do
    redis.call('SMOVE', held, K.pool_set('running', pool), host)
    redis.call('HSET', K.active(pool), host, now)
    redis.call('HSET', K.vm(host), 'template', pool, 'checkout', now)
    local token = redis.call('HGET', K.vm(host), 'token:token')
    if token then
      index_vm(host, token)
    elseif not redis.call('HGET', K.vm(host), 'token:user') then
      redis.call('HDEL', K.vm(host), 'lifetime')
    end
    redis.call('PERSIST', K.vm(host))
    adopted = adopted + 1
  end
end
redis.call('DEL', K.DOUBTFUL)
return adopted
