-- An on-demand request as the API and its manager see it, whichever
-- daemon made or provisioned it (Note [On-demand records] in
-- preamble/ondemand.lua).  id.  Returns false for an unknown id,
-- else JSON {"fields": {the hash}, "asked": epoch seconds or false (no
-- longer queued), "pending": [[host, pool, alias, clone], ...],
-- "ready": [[host, pool, alias], ...], "handed": [[host, pool, alias], ...]}.
local flat = redis.call('HGETALL', K.odrequest(id))
if #flat == 0 then
  return false
end
local fields = {}
for i = 1, #flat, 2 do
  fields[flat[i]] = flat[i + 1]
end
local asked = redis.call('ZSCORE', K.PROCESSING, id) or redis.call('ZSCORE', K.PROVISIONING, id)
local pending, ready, handed = {}, {}, {}
for _, host in ipairs(redis.call('SMEMBERS', K.odpending(id))) do
  local vm = redis.call('HMGET', K.vm(host), 'template', 'pool_alias', 'clone')
  pending[#pending + 1] = {host, vm[1] or '', vm[2] or '', vm[3] or ''}
end
for _, host in ipairs(redis.call('SMEMBERS', K.odready(id))) do
  local vm = redis.call('HMGET', K.vm(host), 'template', 'pool_alias')
  ready[#ready + 1] = {host, vm[1] or '', vm[2] or ''}
end
local seen = {}
for _, w in ipairs(od_wanted(fields['requested'])) do
  local set = K.odvms(id, w[1], w[2])
  if not seen[set] then
    seen[set] = true
    for _, host in ipairs(redis.call('SMEMBERS', set)) do
      handed[#handed + 1] = {host, w[2], w[1]}
    end
  end
end
-- A request an earlier vmpoolerd handed out kept its VMs in its own
-- field, "pool:host,...", not in 3.x's sets: read them from there.
if #handed == 0 and fields['hostnames'] then
  local alias_of = {}
  for _, w in ipairs(od_wanted(fields['requested'])) do
    alias_of[w[2]] = alias_of[w[2]] or w[1]
  end
  for pool, host in string.gmatch(fields['hostnames'], '([^,:]+):([^,]+)') do
    handed[#handed + 1] = {host, pool, alias_of[pool] or pool}
  end
end
return cjson.encode({fields = fields, asked = asked, pending = pending, ready = ready,
  handed = handed})
