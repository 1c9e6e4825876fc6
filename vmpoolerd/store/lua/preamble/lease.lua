-- Note [Pool leases] (manager/leases.py): put before every script a
-- maintainer runs in a cycle, so that a manager that no longer holds the
-- pool's lease (it paused past it, or lost Redis for longer) changes
-- nothing.  ARGV[1]: the pool's lease key, ARGV[2]: this manager's id;
-- both are taken off ARGV before the script proper runs.
if redis.call('GET', ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('NOTHELD ' .. ARGV[1] .. ' is not held by ' .. ARGV[2])
end
table.remove(ARGV, 1)
table.remove(ARGV, 1)
