-- One VM of an on-demand request became ready, or failed (Note [On-demand
-- VMs] in ondemand_create.lua).  Run fenced by the request's claim.
-- id, host, pool, outcome: "ready" or "failed", now (timestamp),
-- reason: why it failed, epoch: now
-- (epoch seconds).
-- ready: pending -> ready.  failed: the VM leaves the request for its
-- pool's completed set (to be destroyed, if it exists), its clone is
-- queued again in K.ODCREATE (Note [On-demand records]), and the request
-- counts a failure and keeps its reason.  Returns 1, or 0 when the VM was
-- no longer the request's pending (or ready) VM.
local pending, ready = K.odpending(id), K.odready(id)
if outcome == 'ready' then
  if redis.call('SMOVE', pending, ready, host) == 0 then
    return 0
  end
  redis.call('HSET', K.vm(host), 'ready', now)
  return 1
end
if redis.call('SREM', pending, host) + redis.call('SREM', ready, host) == 0 then
  return 0
end
redis.call('SREM', K.ondemand(pool), host)
redis.call('SADD', K.pool_set('completed', pool), host)
local alias = redis.call('HGET', K.vm(host), 'pool_alias')
if alias then
  od_tasks(id, alias, pool, 1, epoch)
end
local key = K.odrequest(id)
redis.call('HINCRBY', key, 'failures', 1)
redis.call('HSET', key, 'message', reason)
return 1
