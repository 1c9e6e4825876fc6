-- Note [Clone reservations] (clone_reserve.lua): the names of the clones
-- in flight at ``epoch``, leaving out the reservations run out; with
-- ``drop``, those are deleted too, so that the task limit cannot leak away.
-- The one place the rule is written: pool_state.lua, cloning.lua and the
-- reservations all ask it.
local function clones_in_flight(epoch, drop)
  local live = {}
  local flat = redis.call('HGETALL', K.CLONING)
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) >= epoch then
      live[#live + 1] = flat[i]
    elseif drop then
      redis.call('HDEL', K.CLONING, flat[i])
    end
  end
  return live
end

-- vmpooler's count of clones in flight, kept equal to the reservations.
local function count_clones()
  redis.call('SET', K.tasks('clone'), redis.call('HLEN', K.CLONING))
end
