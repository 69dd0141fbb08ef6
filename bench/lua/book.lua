-- POST /api/v1/appointments, each request for the next open place from a file.
--
-- BENCH_SLOT_IDS names a file with one slot id per line, a slot listed once
-- per free place, already shuffled. Thread k (of BENCH_THREADS) takes lines
-- k+1, k+1+n, k+1+2n, ... so no two requests ask for the same place. Past the
-- end of its share a thread sends slot id 0, which the API refuses with a 4xx:
-- running out shows up as errors instead of passing silently.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local FIRST = { "Maria", "James", "Ana", "Robert", "Sofia", "John", "Lucia", "David" }
local LAST = { "Garcia", "Smith", "Lopez", "Johnson", "Martinez", "Brown", "Nguyen", "Hernandez" }
local HEADERS = { ["Content-Type"] = "application/json" }

local ids = {}
local nthreads = 1
local cursor = 1
local sent = 0
non2xx = 0

function init(args)
   for line in io.lines(os.getenv("BENCH_SLOT_IDS")) do
      ids[#ids + 1] = tonumber(line)
   end
   nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   cursor = id + 1
end

function request()
   local slot_id = ids[cursor] or 0
   cursor = cursor + nthreads
   sent = sent + 1
   local n = id * 100000 + sent
   local body = string.format(
      '{"slot_id":%d,"first_name":"%s","last_name":"%s","phone":"830-257-%04d",'
         .. '"sms_consent":true}',
      slot_id, FIRST[n % #FIRST + 1], LAST[math.floor(n / #FIRST) % #LAST + 1], n % 10000)
   return wrk.format("POST", "/api/v1/appointments", HEADERS, body)
end

-- BENCH_DELAY_MS paces each connection: it waits that long before every
-- request, so 20 connections with 200 ms offer at most 100 bookings/s
-- (an open, steady load instead of clients firing back to back).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
   function delay()
      return pause
   end
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end
