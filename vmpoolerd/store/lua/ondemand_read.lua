-- An on-demand request as the API and its manager see it.  ARGV[1]: id.
-- Returns false for an unknown id, else JSON {"fields": {the hash},
-- "pending": [[host, pool, clone], ...], "ready": [[host, pool], ...]}.
local key = K.odrequest(ARGV[1])
local flat = redis.call('HGETALL', key)
if #flat == 0 then
  return false
end
local fields = {}
for i = 1, #flat, 2 do
  fields[flat[i]] = flat[i + 1]
end
local pending, ready = {}, {}
for _, host in ipairs(redis.call('SMEMBERS', K.odpending(ARGV[1]))) do
  local vm = redis.call('HMGET', K.vm(host), 'template', 'clone')
  pending[#pending + 1] = {host, vm[1] or '', vm[2] or ''}
end
for _, host in ipairs(redis.call('SMEMBERS', K.odready(ARGV[1]))) do
  ready[#ready + 1] = {host, redis.call('HGET', K.vm(host), 'template') or ''}
end
return cjson.encode({fields = fields, pending = pending, ready = ready})
