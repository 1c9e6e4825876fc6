-- Take one queued disk or snapshot request, with the pool of its VM.
--
-- Note [Requests in progress]: a request taken moves from the queue
-- (tasks_key) to the requests being worked on (working_key, member -> when
-- taken), and leaves that only once done or failed (task_done): a daemon
-- that dies mid-work loses no request.  One taken more than lease
-- seconds ago (longer than any vSphere call may last) belongs to a daemon
-- that is gone, and goes back to the queue, here, before anything is taken.
--
-- now (epoch seconds).  Returns [member ("host:argument"), pool
-- ("" for an unknown VM)], or false when none is queued.
local working = redis.call('HGETALL', working_key)
for i = 1, #working, 2 do
  if tonumber(working[i + 1]) < now - lease then
    redis.call('HDEL', working_key, working[i])
    redis.call('SADD', tasks_key, working[i])
  end
end
local member = redis.call('SPOP', tasks_key)
if not member then
  return false
end
redis.call('HSET', working_key, member, now)
local host = string.match(member, '^[^:]*')
return {member, redis.call('HGET', K.vm(host), 'template') or ''}
