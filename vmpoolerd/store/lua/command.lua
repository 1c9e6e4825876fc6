-- One Redis command, the table command being it and its arguments: how a
-- maintainer's plain writes carry its pool lease (preamble/lease.lua).
return redis.call(unpack(command))
