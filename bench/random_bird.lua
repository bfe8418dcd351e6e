-- wrk script: GET /birds/<id> with ids drawn at random from 1..N, N being the script's first argument
-- (wrk -s bench/random_bird.lua URL -- N).
local top = 1

function init(args)
  top = tonumber(args[1])
  -- Each wrk thread has its own Lua state; different seeds keep them from asking the same ids.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return wrk.format("GET", "/birds/" .. math.random(1, top))
end
