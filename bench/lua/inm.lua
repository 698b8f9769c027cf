-- wrk script: a client conditional request.  Every request carries
-- If-None-Match with the ETag the proxy itself sent for the path (bench/run
-- fetches it first), so a cache answers 304 without a body.
--   BENCH_ETAG  the ETag, quotes included
wrk.headers["If-None-Match"] = os.getenv("BENCH_ETAG")
