-- Take one queued disk or snapshot request, with the pool of its VM, in
-- one step: a request taken is never lost to a failure between taking it
-- and looking its VM up.
-- KEYS[1]: vmpooler__tasks__<kind>.  Returns [member ("host:argument"),
-- pool ("" for an unknown VM)], or false when none is queued.
local member = redis.call('SPOP', KEYS[1])
if not member then
  return false
end
local host = string.match(member, '^[^:]*')
return {member, redis.call('HGET', 'vmpooler__vm__' .. host, 'template') or ''}
