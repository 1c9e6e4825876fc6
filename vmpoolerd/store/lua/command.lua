-- One Redis command, ARGV being the command and its arguments: how a
-- maintainer's plain writes carry its pool lease (preamble/lease.lua).
return redis.call(unpack(ARGV))
