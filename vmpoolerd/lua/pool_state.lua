-- Everything the pool manager needs to know of one pool, in one call.
-- ARGV[1]: pool name.  Returns JSON {"vms": [[name, set, clone, checkout,
-- lifetime, check, ready], ...], "cloning": [name, ...], "empty": bool}.
local pool = ARGV[1]
local vms = {}
for _, set in ipairs({'pending', 'ready', 'running', 'completed', 'discovered'}) do
  for _, host in ipairs(redis.call('SMEMBERS', 'vmpooler__' .. set .. '__' .. pool)) do
    local f = redis.call('HMGET', 'vmpooler__vm__' .. host,
      'clone', 'checkout', 'lifetime', 'check', 'ready')
    vms[#vms + 1] = {host, set, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or ''}
  end
end
local cloning = {}
local flat = redis.call('HGETALL', 'vmpooler__cloning')
for i = 1, #flat, 2 do
  cloning[#cloning + 1] = flat[i]
end
local empty = redis.call('EXISTS', 'vmpooler__empty__' .. pool) == 1
return cjson.encode({vms = vms, cloning = cloning, empty = empty})
