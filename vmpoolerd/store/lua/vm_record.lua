-- Record the result of disk or snapshot work in a VM's hash, if the VM is
-- still known (a hash that has expired is not made again).
-- KEYS[1]: the VM's hash, ARGV[1]: field, ARGV[2]: value, ARGV[3]:
-- "append" (to a ":"-separated list: "+8gb:+4gb") or "set".
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'append' and old then
  redis.call('HSET', KEYS[1], ARGV[1], old .. ':' .. ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
