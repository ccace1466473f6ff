-- Adds ARGV[1] (a canonical unsigned decimal) to the counter at KEYS[1], atomically: Redis
-- runs a script alone. The rules are those of keyvalue_store::semantics::apply_increment,
-- over the whole u64 range (INCRBY stops at i64, and Lua numbers are doubles, hence the
-- arithmetic on digit strings).
--
-- Returns {1, new value} on success: an integer below 2^53, else a digit string. When the
-- stored value is not a counter or the sum would pass 2^64 - 1, it changes nothing and returns
-- {0, stored value}, from which the caller builds the exact error the shared semantics give.
local MAX = '18446744073709551615'

-- Fast path, for counters below 2^53 (where a Lua number, a double, is exact): INCRBY does the
-- work in one call. It refuses, changing nothing, a value that is not an integer and a sum past
-- 2^63 - 1. It does take a negative integer, which is no counter here; that change is undone
-- before anyone can see it, since Redis runs a script alone, and the slow path below decides.
local EXACT = 9007199254740992
if #ARGV[1] <= 15 then
  local ok, next = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
  if ok then
    if next >= tonumber(ARGV[1]) and next < EXACT then return {1, next} end
    redis.call('DECRBY', KEYS[1], ARGV[1])
  end
end

-- "0", or digits without a leading zero, no larger than MAX.
local function is_counter(digits)
  if digits == '0' then return true end
  if not string.find(digits, '^[1-9]%d*$') then return false end
  if #digits ~= #MAX then return #digits < #MAX end
  for i = 1, #MAX do
    local a, b = string.byte(digits, i), string.byte(MAX, i)
    if a ~= b then return a < b end
  end
  return true
end

-- Schoolbook addition of two digit strings.
local function add(a, b)
  local out, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local sum = carry
    if i > 0 then sum = sum + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then sum = sum + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = string.char(48 + sum % 10)
    carry = math.floor(sum / 10)
  end
  return string.reverse(table.concat(out))
end

local current = redis.call('GET', KEYS[1])
if current == false then current = '0' end
if not is_counter(current) then return {0, current} end
local next = add(current, ARGV[1])
if not is_counter(next) then return {0, current} end
-- KEEPTTL: an expiry someone set on the counter survives, as it does with INCRBY.
redis.call('SET', KEYS[1], next, 'KEEPTTL')
return {1, next}
