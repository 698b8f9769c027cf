-- wrk script: every request a distinct URL, BENCH_PREFIX .. N, for
-- N = 0 .. BENCH_COUNT-1 spread over wrk's threads (thread i takes
-- i, i+T, i+2T, ...).  Past BENCH_COUNT the walk starts again at 0, so the
-- set of URLs is bounded (repeats are then cache hits).
--   BENCH_PREFIX  e.g. /miss/fc2-r1/   (unique per proxy and run)
--   BENCH_COUNT   default 100000
local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   prefix = os.getenv("BENCH_PREFIX") or "/miss/"
   count = tonumber(os.getenv("BENCH_COUNT") or "100000")
   nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   n = tid
end

function request()
   local path = prefix .. n
   n = n + nthreads
   if n >= count then
      n = tid
   end
   return wrk.format("GET", path)
end
