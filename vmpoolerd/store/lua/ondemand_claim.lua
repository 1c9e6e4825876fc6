-- Claim an on-demand request for this manager, or renew its claim (Note
-- [On-demand requests] in ondemand_create.lua): two managers never work
-- on one request, and a dead manager's claim runs out.  A request no
-- manager had taken is taken as vmpooler 3.x's manager takes one (Note
-- [On-demand records] in preamble/ondemand.lua): K.PROVISIONING ->
-- K.PROCESSING, its clones queued in K.ODCREATE.
-- id, manager: the manager's id, life: the claim's life (ms; 0 gives
-- the claim up), epoch: now (epoch seconds).  Returns 1 when the
-- request is (or was) this manager's, 0 when another's or not to be worked
-- on (yet).
local key = K.odclaim(id)
local owner = redis.call('GET', key)
if owner and owner ~= manager then
  return 0
end
if life == '0' then
  redis.call('DEL', key)
  return 1
end
local asked = redis.call('ZSCORE', K.PROVISIONING, id)
if asked then
  local requested = redis.call('HGET', K.odrequest(id), 'requested')
  if not requested then
    -- vmpooler 3.x's API queues the id before it writes the hash: wait a
    -- little for it, then drop what will never be a request.
    if tonumber(epoch) - tonumber(asked) > 60 then
      redis.call('ZREM', K.PROVISIONING, id)
    end
    return 0
  end
  redis.call('ZREM', K.PROVISIONING, id)
  redis.call('ZADD', K.PROCESSING, asked, id)
  for _, w in ipairs(od_wanted(requested)) do
    od_tasks(id, w[1], w[2], w[3], asked)
  end
end
redis.call('SET', key, manager, 'PX', life)
return 1
