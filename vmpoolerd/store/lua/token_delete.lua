-- Delete a token if it belongs to the caller: ARGV[1] the caller's DN,
-- ARGV[2] their name (compared only for a token that records no DN).
-- KEYS[1]: the token's hash, KEYS[2]: its VMs' index (Note [Token index]
-- in preamble/vms.lua), deleted with it.  Returns 1 (deleted), 0 (no such token) or
-- -1 (another user's).
local found = redis.call('HMGET', KEYS[1], 'user', 'user_dn')
if not found[1] then
  return 0
end
if found[2] and found[2] ~= ARGV[1] or not found[2] and found[1] ~= ARGV[2] then
  return -1
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
