-- wrk script for etcd's v3 JSON gateway: `put` (the default) writes a random
-- key among 1,000 with a 100-byte value (the key space and value size of
-- `ringkv bench`); `range` reads one (linearizable, etcd's default).
-- wrk -s kv.lua URL -- put|range
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function enc(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local keys = {}
for i = 1, 1000 do keys[i] = enc(string.format("key%08d", i)) end
local value = enc(string.rep("v", 100))
local op = "put"
math.randomseed(os.time())
init = function(args)
  if args[1] then op = args[1] end
end
request = function()
  local k = keys[math.random(1, 1000)]
  local body = '{"key":"' .. k .. '"}'
  if op == "put" then body = '{"key":"' .. k .. '","value":"' .. value .. '"}' end
  return wrk.format("POST", "/v3/kv/" .. op, { ["Content-Type"] = "application/json" }, body)
end
