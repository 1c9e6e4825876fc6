-- The pools configured, as vmpooler 3.x publishes them at start for its
-- API and dashboards (Note [What a 3.x fleet reads] in published.py): each
-- pool's name in K.POOLS and its fields in K.pool_config(pool), replaced
-- whole; a pool no longer configured leaves both.
--
-- published: JSON {pool: {field: value}}.  Returns the pools dropped.
local pools = cjson.decode(published)
local dropped = {}
for _, name in ipairs(redis.call('SMEMBERS', K.POOLS)) do
  if pools[name] == nil then
    redis.call('SREM', K.POOLS, name)
    redis.call('DEL', K.pool_config(name))
    dropped[#dropped + 1] = name
  end
end
for name, fields in pairs(pools) do
  redis.call('SADD', K.POOLS, name)
  redis.call('DEL', K.pool_config(name))
  for field, value in pairs(fields) do
    redis.call('HSET', K.pool_config(name), field, value)
  end
end
return dropped
