-- The names of the clones in flight, in every pool: the reservations not
-- run out (Note [Clone reservations] in clone_reserve.lua; the rule is
-- clones_in_flight, in preamble/clones.lua).
-- epoch: now (epoch seconds).  Returns the names.
return clones_in_flight(epoch, false)
