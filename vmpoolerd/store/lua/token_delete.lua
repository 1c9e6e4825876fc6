-- Delete a token if it belongs to the caller: dn: the caller's DN,
-- user: their name (compared only for a token that records no DN).
-- token_key: the token's hash, index_key: its VMs' index (Note [Token index]
-- in preamble/vms.lua), deleted with it.  Returns 1 (deleted), 0 (no such token) or
-- -1 (another user's).
local found = redis.call('HMGET', token_key, 'user', 'user_dn')
if not found[1] then
  return 0
end
if found[2] and found[2] ~= dn or not found[2] and found[1] ~= user then
  return -1
end
redis.call('DEL', token_key, index_key)
return 1
