-- Record the result of disk or snapshot work in a VM's hash, if the VM is
-- still known (a hash that has expired is not made again).
-- vm_key: the VM's hash, field, value, mode:
-- "append" (to a ":"-separated list: "+8gb:+4gb") or "set".
if redis.call('EXISTS', vm_key) == 0 then
  return 0
end
local old = redis.call('HGET', vm_key, field)
if mode == 'append' and old then
  redis.call('HSET', vm_key, field, old .. ':' .. value)
else
  redis.call('HSET', vm_key, field, value)
end
return 1
