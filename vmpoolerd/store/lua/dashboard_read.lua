-- What the dashboard shows.  since: the oldest epoch of history to
-- return, or '' for none; pool_names.
-- Returns per pool {ready, running, history}: history is a JSON array of
-- [epoch, ready, running] samples, oldest first ('' without history).
-- Samples are passed through as stored, so a long history costs no
-- decoding here (see Note [Dashboard history] in dashboard_sample.lua).
local pools = {}
for i, pool in ipairs(pool_names) do
  local history = ''
  if since then
    local samples = redis.call('LRANGE', K.dashboard(pool), 0, -1)
    local j = #samples
    while j >= 1 and cjson.decode(samples[j])[1] < since do j = j - 1 end
    local kept = {}
    for k = j, 1, -1 do kept[#kept + 1] = samples[k] end
    history = '[' .. table.concat(kept, ',') .. ']'
  end
  pools[i] = {
    redis.call('SCARD', K.pool_set('ready', pool)),
    redis.call('SCARD', K.pool_set('running', pool)),
    history,
  }
end
return pools
