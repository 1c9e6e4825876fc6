-- Note [On-demand records]: an on-demand request is kept as vmpooler 3.x
-- keeps it, so that either's API and either's manager serve it:
--
-- - its hash K.odrequest(id): "requested" ("alias:pool:count,..."),
--   "token:token" and "token:user" when asked with a token, and "status"
--   only once it has one: "ready", "failed" or "deleted" (no status: still
--   being provisioned; an older vmpoolerd wrote "pending", read alike);
-- - K.PROVISIONING while no manager has taken it, then K.PROCESSING (score:
--   the epoch second it was asked, which its TTL counts from); K.ODCREATE
--   holds "alias:pool:count:id", the clones still to start for it;
-- - its VMs handed out, in K.odvms(id, alias, pool), running; each VM's
--   hash has "request_id" and "pool_alias".
--
-- vmpoolerd adds fields 3.x ignores ("token:user_dn", "client",
-- "failures", "message") and keeps the VMs it is still provisioning out of
-- their pools (Note [On-demand VMs] in ondemand_create.lua).  3.x hands each
-- VM out as it becomes ready; vmpoolerd hands a request out whole, into the
-- same sets.

-- The entries of a "requested" field: {alias, pool, count} each.
local function od_wanted(requested)
  local out = {}
  for entry in string.gmatch(requested or '', '[^,]+') do
    local alias, pool, count = string.match(entry, '^([^:]*):([^:]+):(%d+)$')
    if alias then
      out[#out + 1] = {alias, pool, tonumber(count)}
    end
  end
  return out
end

-- Add ``delta`` (negative: clones started) to the clones still to start
-- for ``alias``/``pool`` of request ``id`` in K.ODCREATE, never below 0
-- (its score kept, else ``score``); ``pool`` nil: drop all of ``id``'s.
local function od_tasks(id, alias, pool, delta, score)
  local count, at = 0, score
  local flat = redis.call('ZRANGE', K.ODCREATE, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local a, p, n, r = string.match(flat[i], '^([^:]*):([^:]*):(%d+):(.*)$')
    if r == id and (pool == nil or (a == alias and p == pool)) then
      count, at = count + tonumber(n), flat[i + 1]
      redis.call('ZREM', K.ODCREATE, flat[i])
    end
  end
  if pool ~= nil and count + delta > 0 then
    redis.call('ZADD', K.ODCREATE, at, alias .. ':' .. pool .. ':' .. (count + delta) .. ':' .. id)
  end
end

-- A request VM leaves it for its pool's completed set (to be destroyed):
-- from the set ``from`` of its pool (nil: from none, it was being
-- provisioned), if it is there.
local function od_retire(host, from)
  local pool = redis.call('HGET', K.vm(host), 'template')
  if pool then
    redis.call('SREM', K.ondemand(pool), host)
    if from == nil or redis.call('SREM', K.pool_set(from, pool), host) == 1 then
      redis.call('SADD', K.pool_set('completed', pool), host)
    end
  end
end
