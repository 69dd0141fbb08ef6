-- Shared by every bench run: numbers the threads and, when wrk is done, prints
-- one line "BENCH_JSON {...}" that run_bench.py parses. Times are microseconds.
-- A script that defines response() may keep a global "non2xx" count per thread;
-- it is summed here (wrk's own "status" error counts only codes above 399).

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local non2xx = -1
   for _, thread in ipairs(threads) do
      local n = thread:get("non2xx")
      if n ~= nil then
         non2xx = math.max(non2xx, 0) + n
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"non2xx":%d,"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,'
         .. '"p50":%d,"p90":%d,"p95":%d,"p99":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      non2xx, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(95), latency:percentile(99)))
end
