-- Take one queued disk or snapshot request, with the pool of its VM.
--
-- Note [Requests in progress]: a request taken moves from the queue
-- (KEYS[1]) to the requests being worked on (KEYS[2], member -> when
-- taken), and leaves that only once done or failed (task_done): a daemon
-- that dies mid-work loses no request.  One taken more than ARGV[2]
-- seconds ago (longer than any vSphere call may last) belongs to a daemon
-- that is gone, and goes back to the queue, here, before anything is taken.
--
-- ARGV[1]: now (epoch seconds).  Returns [member ("host:argument"), pool
-- ("" for an unknown VM)], or false when none is queued.
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local working = redis.call('HGETALL', KEYS[2])
for i = 1, #working, 2 do
  if tonumber(working[i + 1]) < now - lease then
    redis.call('HDEL', KEYS[2], working[i])
    redis.call('SADD', KEYS[1], working[i])
  end
end
local member = redis.call('SPOP', KEYS[1])
if not member then
  return false
end
redis.call('HSET', KEYS[2], member, now)
local host = string.match(member, '^[^:]*')
return {member, redis.call('HGET', K.vm(host), 'template') or ''}
