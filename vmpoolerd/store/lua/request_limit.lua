-- Count one API request against vmpooler 3.x's rate limit of its kind
-- (Note [Request limits] in api/ratelimit.py).
--
-- counter: the counter of the client the request names
-- (vmpooler__ratelimit__<kind>__token:<token>, or __ip:<address>); with a
-- token, token_key is the token's hash and address_counter the counter of the
-- client's address, counted instead when the token does not exist (a
-- client inventing tokens would otherwise start a new count each time).
-- period: the window (seconds).
--
-- The window starts with the counter and is never pushed back: the expiry
-- is set when the counter is new (or has none, as a key written by another
-- daemon that stopped halfway may have), not on every request.
-- Returns {count, seconds left of the window}.
local key = counter
if token_key and redis.call('EXISTS', token_key) == 0 then
  key = address_counter
end
local count = redis.call('INCR', key)
local ttl = redis.call('TTL', key)
if count == 1 or ttl < 0 then
  redis.call('EXPIRE', key, period)
  ttl = period
end
return {count, ttl}
