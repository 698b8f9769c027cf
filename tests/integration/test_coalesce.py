#!/usr/bin/env python3
"""Request coalescing (cache.coalesce): many clients on one cold key make one
origin request, and everyone gets the full, identical body."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402


def fetch_all(port, target, n):
    """n clients connect, wait at a barrier, then send at once.  Returns a list
    of (t_sent, t_done, Response), times from time.monotonic()."""
    def client(i, barrier):
        with H.RawConn(port, timeout=20) as c:
            barrier.wait()
            t0 = time.monotonic()
            c.send(H.build_request("GET", target, host="127.0.0.1:%d" % port))
            r = c.read_response()
            return t0, time.monotonic(), r
    return H.parallel(n, client)


class CoalesceTest(H.ProxyTestCase):

    def check_collapsed(self, results, body):
        for i, (_, _, r) in enumerate(results):
            self.assertEqual(r.status, 200, "client %d: %r" % (i, r))
            self.assertTrue(r.complete, "client %d: %r" % (i, r))
            self.assertBody(r, body, "client %d" % i)
        statuses = [r.cache_status for _, _, r in results]
        leaders = [i for i, cs in enumerate(statuses) if not cs.get("hit") and not cs.get("collapsed")]
        self.assertEqual(len(leaders), 1, "exactly one client should have caused the fetch: %r"
                         % [r.header("Cache-Status") for _, _, r in results])
        self.assertEqual(statuses[leaders[0]].get("fwd"), "miss", statuses[leaders[0]])
        first_done = min(done for _, done, _ in results)
        collapsed = 0
        for i, (sent, _, r) in enumerate(results):
            cs = statuses[i]
            if i == leaders[0]:
                continue
            if cs.get("collapsed"):
                collapsed += 1
            else:   # a plain hit is fine only for a request sent after a response was complete
                self.assertTrue(cs.get("hit") and sent >= first_done,
                                "client %d neither collapsed nor a later hit: %r"
                                % (i, r.header("Cache-Status")))
        self.assertGreaterEqual(collapsed, len(results) // 2,
                                "most clients should have waited for the one fetch")

    def test_50_clients_one_origin_request(self):
        seed = self.uniq()
        t = url("/t/body", size=50000, delay_ms=500, cc="max-age=60", seed=seed)
        t0 = time.monotonic()
        results = fetch_all(self.port, t, 50)
        elapsed = time.monotonic() - t0
        self.assertOriginCount(t, 1)
        self.check_collapsed(results, expected_body(50000, seed))
        self.assertLess(elapsed, 3.0, "clients waited far longer than the one slow fetch")
        r = self.get(t)
        self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_collapsed_streaming_chunked_body(self):
        """Waiters on a large chunked response streaming in slowly get all of it."""
        seed = self.uniq()
        size = 1 * H.MiB + 12345
        t = url("/t/body", size=size, chunked=1, chunk_size=262144, chunk_delay_ms=100,
                delay_ms=200, cc="max-age=60", seed=seed)
        results = fetch_all(self.port, t, 20)
        self.assertOriginCount(t, 1)
        self.check_collapsed(results, expected_body(size, seed))

    def test_uncacheable_response_reaches_everyone(self):
        """Coalesced onto a response that turns out to be no-store: every client
        still gets a complete, correct response."""
        seed = self.uniq()
        t = url("/t/body", size=3000, delay_ms=300, cc="no-store", seed=seed)
        t0 = time.monotonic()
        results = fetch_all(self.port, t, 10)
        self.assertLess(time.monotonic() - t0, 8.0)
        for i, (_, _, r) in enumerate(results):
            self.assertOk(r, expected_body(3000, seed))
            self.assertFalse(r.cache_status.get("hit"), "client %d: %r" % (i, r))
        n = self.origin.count(t)
        self.assertGreaterEqual(n, 1)
        self.assertLessEqual(n, 10)
        # and nothing was stored
        self.get(t)
        self.assertEqual(self.origin.count(t), n + 1)

    def test_different_keys_not_coalesced(self):
        seeds = [self.uniq() for _ in range(5)]
        targets = [url("/t/body", size=100, delay_ms=300, cc="max-age=60", seed=s) for s in seeds]

        def client(i, barrier):
            with H.RawConn(self.port, timeout=20) as c:
                barrier.wait()
                return c.request("GET", targets[i])
        t0 = time.monotonic()
        results = H.parallel(5, client)
        self.assertLess(time.monotonic() - t0, 1.5, "different keys were serialized")
        for i, r in enumerate(results):
            self.assertOk(r, expected_body(100, seeds[i]))
            self.assertOriginCount(targets[i], 1)


class LateJoinTest(H.ProxyTestCase):
    """A revalidation already sent is joined by the requests that come
    during its round trip when its outcome will be fresh (an expired copy
    with a lifetime): one conditional request for the crowd.  Never by a
    request with no-cache, never for a copy stored with no-cache (both ask
    for a validation after the request came), and a late joiner whose
    outcome is stale for it revalidates on its own.  Late joining is per
    worker: one worker here, so that every client meets the first one's
    revalidation."""

    config = {"workers": 1}
    ORIGIN_DELAY_MS = 600

    def stored(self, cc, **kw):
        key = self.uniq()
        t = url("/t/mutable", key=key, etag=1, cc=cc, delay_ms=self.ORIGIN_DELAY_MS, **kw)
        self.assertOk(self.get(t), b"1\n")
        return t

    def crowd(self, t, n=6, headers=None, gap=0.05):
        """n clients, each on its own connection, `gap` seconds apart: all
        within the origin's delay, each read in a pass of its own."""
        results = [None] * n

        def one(i):
            results[i] = self.get(t, headers=headers)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
            time.sleep(gap)
        for th in threads:
            th.join(15)
        for i, r in enumerate(results):
            self.assertOk(r, b"1\n")
        return results

    def test_expired_copy_one_conditional_request_for_the_crowd(self):
        t = self.stored("max-age=2")
        time.sleep(3.1)
        rs = self.crowd(t)
        self.assertOriginCount(t, 2)
        self.assertIsNotNone(H.req_header(self.origin.log(t)[1], "If-None-Match"))
        statuses = [r.cache_status for r in rs]
        self.assertEqual([cs.get("fwd-status") for cs in statuses], [304] * 6, statuses)
        self.assertEqual(sum(bool(cs.get("collapsed")) for cs in statuses), 5,
                         [r.header("Cache-Status") for r in rs])
        self.assertHit(self.get(t))     # the 304 made it fresh
        self.assertOriginCount(t, 2)

    def test_request_no_cache_never_joins_late(self):
        t = self.stored("max-age=2")
        time.sleep(3.1)
        self.crowd(t, headers={"Cache-Control": "no-cache"})
        self.assertOriginCount(t, 7)

    def test_no_cache_copy_never_joined_late(self):
        t = self.stored("no-cache")
        self.crowd(t)
        self.assertOriginCount(t, 7)

    def test_stale_outcome_late_joiners_ask_on_their_own(self):
        # the origin's 304 says max-age=0: the refreshed copy is stale at
        # once, fine for the request that caused it, not for those that
        # came before it was answered
        t = self.stored("max-age=2", hdr304="Cache-Control:max-age=0")
        time.sleep(3.1)
        self.crowd(t)
        self.assertOriginCount(t, 7)


class JoinedStaleIfErrorTest(H.ProxyTestCase):
    """The revalidation a crowd joined is answered with a server error
    (its leader's alone: never stored over the copy): every one of them
    gets the stale copy (stale_if_error) from that one origin request,
    rather than each asking a failing origin again."""

    config = {"workers": 1,
              "policies": [{"name": "default", "ttl": "origin", "stale_if_error": "1h"}]}
    ORIGIN_DELAY_MS = LateJoinTest.ORIGIN_DELAY_MS
    crowd = LateJoinTest.crowd

    def test_crowd_served_the_copy_from_one_failed_revalidation(self):
        key = self.uniq()
        t = url("/t/mutable", key=key, etag=1, cc="max-age=2", delay_ms=self.ORIGIN_DELAY_MS)
        self.assertOk(self.get(t), b"1\n")
        time.sleep(3.1)
        self.origin.set(key, status=503)
        rs = self.crowd(t)
        self.assertEqual([r.cache_status.get("detail") for r in rs], ["stale-if-error"] * 6,
                         [r.header("Cache-Status") for r in rs])
        self.assertOriginCount(t, 2)


class CoalesceOffTest(H.ProxyTestCase):
    config = {"cache": {"coalesce": False}}

    def test_each_client_fetches(self):
        seed = self.uniq()
        t = url("/t/body", size=1000, delay_ms=400, cc="max-age=60", seed=seed)
        results = fetch_all(self.port, t, 8)
        for _, _, r in results:
            self.assertOk(r, expected_body(1000, seed))
            self.assertFalse(r.cache_status.get("collapsed"), r)
        self.assertGreater(self.origin.count(t), 1, "coalesce: false still coalesced")


if __name__ == "__main__":
    H.main()
