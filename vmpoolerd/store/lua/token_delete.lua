-- Delete a token if it belongs to ARGV[1].  KEYS[1]: the token's hash.
-- Returns 1 (deleted), 0 (no such token) or -1 (another user's).
local user = redis.call('HGET', KEYS[1], 'user')
if not user then
  return 0
end
if user ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
