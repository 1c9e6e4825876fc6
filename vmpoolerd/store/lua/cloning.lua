-- The names of the clones in flight, in every pool: the reservations not
-- run out (Note [Clone reservations] in clone_reserve.lua; the rule is
-- clones_in_flight, in preamble/clones.lua).
-- ARGV[1]: now (epoch seconds).  Returns the names.
return clones_in_flight(tonumber(ARGV[1]), false)
