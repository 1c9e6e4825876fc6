-- Store a new on-demand request and queue it.
--
-- Note [On-demand requests]: a request is vmpooler 3.x's hash
-- vmpooler__odrequest__<id> (requested: "alias:pool:count,...", token:token,
-- token:user, status: pending, ready, failed or deleted; and here: created,
-- token:user_dn, failures, message, hostnames once handed out) queued in
-- the sorted set vmpooler__provisioning__request (score: the epoch second
-- it was asked) while it is pending.  One manager at a time works on it,
-- under the claim vmpooler__odclaim__<id> (ondemand_claim.lua).
--
-- Note [On-demand VMs]: a request's VMs are never in a pool's sets while
-- they are provisioned: they are in vmpooler__odpending__<id> and
-- vmpooler__odready__<id>, and, so that their pool's maintainer neither
-- counts nor discovers them, in vmpooler__ondemand__<pool>.  Handing the
-- request out moves them all to their pools' running sets at once
-- (ondemand_handout.lua); a failed or deleted request moves them to their
-- pools' completed sets, for their maintainers to destroy.
--
-- ARGV[1]: id, ARGV[2]: requested, ARGV[3]: now (timestamp), ARGV[4]: now
-- (epoch seconds), ARGV[5]: token, ARGV[6]: user, ARGV[7]: user's DN.
-- Returns 1, or 0 when the id is taken.
local key = K.odrequest(ARGV[1])
if redis.call('EXISTS', key) == 1 then
  return 0
end
redis.call('HSET', key, 'requested', ARGV[2], 'status', 'pending', 'created', ARGV[3],
  'failures', 0)
if ARGV[5] ~= '' then
  redis.call('HSET', key, 'token:token', ARGV[5], 'token:user', ARGV[6])
  if ARGV[7] ~= '' then
    redis.call('HSET', key, 'token:user_dn', ARGV[7])
  end
end
redis.call('ZADD', K.PROVISIONING, ARGV[4], ARGV[1])
-- Wake the managers (no pool is named ":ondemand").
redis.call('PUBLISH', K.CHECKOUT_CHANNEL, K.ONDEMAND_WAKEUP)
return 1
