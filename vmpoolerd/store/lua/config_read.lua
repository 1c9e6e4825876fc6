-- The live overrides of pools (Note [Live pool config] in config_set.lua)
-- and the size their demand sets (Note [Counting demand] in checkout.lua).
-- pools: pool names.  Returns, per pool, {size override or '', template
-- override or '', clone target override or '', reset asked (0 or 1), the
-- size decided from demand or '', the template its VMs were cloned from or ''}.
local rows = {}
for i, pool in ipairs(pools) do
  local size = ''
  local shown = redis.call('HGET', K.demand(pool), 'shown')
  if shown then
    local ok, decoded = pcall(cjson.decode, shown)
    if ok and type(decoded) == 'table' and decoded.size then
      size = tostring(decoded.size)
    end
  end
  rows[i] = {
    redis.call('HGET', K.config('poolsize'), pool) or '',
    redis.call('HGET', K.config('template'), pool) or '',
    redis.call('HGET', K.config('clone_target'), pool) or '',
    redis.call('SISMEMBER', K.POOL_RESET, pool),
    size,
    redis.call('HGET', K.TEMPLATE_CLONED, pool) or '',
  }
end
return rows
