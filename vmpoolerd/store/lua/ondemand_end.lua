-- End an on-demand request that failed, ran past its TTL or was deleted
-- (Note [On-demand VMs] in ondemand_create.lua): its VMs, provisioned or
-- handed out, go to their pools' completed sets, to be destroyed, and it
-- leaves every queue (Note [On-demand records] in preamble/ondemand.lua).
-- A manager runs it fenced by the request's claim; the API (a delete) not.
-- A request that another daemon ended (vmpooler 3.x's API deletes without
-- dequeuing) keeps its status; what vmpoolerd was provisioning for it is
-- let go all the same; so it is with status '' (let go only: the
-- request's status and the VMs handed out are left as they are).
-- id, status: the new status ("failed", "deleted" or ''), message,
-- keep: seconds to keep the request.  Returns 0 for an
-- unknown id, -1 for a request that had ended, else 1.
local key = K.odrequest(id)
local r = redis.call('HMGET', key, 'status', 'requested')
local ended = r[1] == 'failed' or r[1] == 'deleted' or status == ''
for _, set in ipairs({K.odpending(id), K.odready(id)}) do
  for _, host in ipairs(redis.call('SMEMBERS', set)) do
    od_retire(host, nil)
  end
end
if not ended then
  for _, w in ipairs(od_wanted(r[2])) do
    local set = K.odvms(id, w[1], w[2])
    for _, host in ipairs(redis.call('SMEMBERS', set)) do
      od_retire(host, 'running')
    end
    if status == 'deleted' then
      redis.call('DEL', set)
    else
      redis.call('EXPIRE', set, keep)
    end
  end
end
redis.call('DEL', K.odpending(id), K.odready(id), K.odclaim(id))
redis.call('ZREM', K.PROVISIONING, id)
redis.call('ZREM', K.PROCESSING, id)
od_tasks(id)
if not r[2] and redis.call('EXISTS', key) == 0 then
  return 0
end
if ended then
  return -1
end
redis.call('HSET', key, 'status', status, 'message', message)
redis.call('EXPIRE', key, keep)
return 1
