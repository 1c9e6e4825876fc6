-- The running VMs checked out with a token, as {host, pool} pairs.
-- ARGV[1]: token, ARGV[2..]: pool names.
local hosts = {}
for i = 2, #ARGV do
  for _, host in ipairs(redis.call('SMEMBERS', K.pool_set('running', ARGV[i]))) do
    if redis.call('HGET', K.vm(host), 'token:token') == ARGV[1] then
      hosts[#hosts + 1] = {host, ARGV[i]}
    end
  end
end
return hosts
