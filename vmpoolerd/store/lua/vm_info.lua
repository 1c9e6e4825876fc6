-- A VM's hash and the set of its pool it is in.
-- host: its name.  Returns false when the VM is unknown, else
-- {set name or "", {field, value, ...}}.
local fields = redis.call('HGETALL', K.vm(host))
if #fields == 0 then
  return false
end
local pool
for i = 1, #fields, 2 do
  if fields[i] == 'template' then
    pool = fields[i + 1]
  end
end
local state = ''
if pool then
  for _, set in ipairs({'running', 'ready', 'pending', 'completed', 'discovered'}) do
    if redis.call('SISMEMBER', K.pool_set(set, pool), host) == 1 then
      state = set
      break
    end
  end
end
return {state, fields}
