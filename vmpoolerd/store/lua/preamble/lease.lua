-- Note [Pool leases] (manager/leases.py): put before every script a
-- maintainer runs in a cycle, so that a manager that no longer holds the
-- pool's lease (it paused past it, or lost Redis for longer) changes
-- nothing.  fence_key: the pool's lease key, fence_holder: this manager's
-- id; both come before the script's own arguments (prelude.py).
if redis.call('GET', fence_key) ~= fence_holder then
  return redis.error_reply('NOTHELD ' .. fence_key .. ' is not held by ' .. fence_holder)
end
