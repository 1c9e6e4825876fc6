-- Claim an on-demand request for this manager, or renew its claim (Note
-- [On-demand requests] in ondemand_create.lua): two managers never work
-- on one request, and a dead manager's claim runs out.
-- ARGV[1]: id, ARGV[2]: the manager's id, ARGV[3]: the claim's life (ms;
-- 0 gives the claim up).  Returns 1 when the request is (or was) this
-- manager's, 0 when another's.
local key = K.odclaim(ARGV[1])
local owner = redis.call('GET', key)
if owner and owner ~= ARGV[2] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', key)
else
  redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
end
return 1
