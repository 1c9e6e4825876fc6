-- Record why a VM failed (Note [Failures explained] in manager/failures.py):
-- on the VM's hash (kept as long as the VM's data), at the head of its
-- pool's recent failures (the last RECENT kept), and in its pool's count
-- by kind.
--
-- pool, host, kind, reason, now: when (timestamp text), keep: how many
-- recent failures a pool keeps.
local vm = K.vm(host)
if redis.call('EXISTS', vm) == 1 then
  redis.call('HSET', vm, 'failure', reason, 'failure_kind', kind, 'failed', now)
end
local recent = K.failures(pool)
redis.call('LPUSH', recent, cjson.encode({host = host, kind = kind, reason = reason, time = now}))
redis.call('LTRIM', recent, 0, keep - 1)
redis.call('HINCRBY', K.failure_counts(pool), kind, 1)
return 1
