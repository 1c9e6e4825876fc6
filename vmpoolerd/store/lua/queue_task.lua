-- Queue disk or snapshot work for a known VM.
-- KEYS[1]: the VM's hash, KEYS[2]: the task set.
-- ARGV[1]: the member ("host:size", "host:snapshot"), ARGV[2]: a field the
-- VM's hash must have ("" for none), ARGV[3]: the VM's owner as the API
-- checked it ('*': any; see Note [Owner checks] in api/routes.py).
-- Returns 1 (queued), 0 (no such VM), -1 (the field is missing) or -2 (the
-- owner is no longer the one checked).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[3] ~= '*' and (redis.call('HGET', KEYS[1], 'token:user') or '') ~= ARGV[3] then
  return -2
end
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return -1
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
