#!/usr/bin/python3
"""HTTP/2 to clients (issue 11): the cache behaves over streams exactly as
over HTTP/1.1.

The suites that matter run again with the client swapped (over_h2 below):
the same test methods, the same assertions, self.get() and self.conn()
speaking HTTP/2 through harness.H2Conn instead of HTTP/1.1.  Cleartext
with prior knowledge (a listener with http2: true) runs them all, TLS
with ALPN h2 the protocol-level ones (Basic, Conditionals, Bodies,
RequestBody): the same front end under another transport.  Each copy
names the HTTP/1.1-only methods it leaves out (pipelining, HTTP/1.0,
connection-specific fields that HTTP/2 forbids, raw request bytes) and why.

Then what only HTTP/2 has: Range over a stream, many streams coalescing
on one origin fetch, concurrent uploads on one connection, an origin that
fails mid-body (the stream is reset, the connection lives), the access
log's HTTP/2.0, metrics counting one connection for many streams, cookies
joined for the origin, no server push, HTTP/1.1 on the same http2: true
port, curl --http2 (TLS, ALPN) and --http2-prior-knowledge, nghttp -m 10.

The bounds and attacks are in test_h2_bounds.py.

Needs python3-h2 (Debian's: run with /usr/bin/python3), FRESHCACHED,
TEST_ORIGIN, PROXYCTL (see harness.py), openssl, curl and nghttp
(nghttp2-client)."""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_basic as basic  # noqa: E402
import test_bodies as bodies  # noqa: E402
import test_coalesce as coalesce  # noqa: E402
import test_deploy as deploy  # noqa: E402
import test_ops as ops  # noqa: E402
import test_rfc9111 as rfc  # noqa: E402
from harness import expected_body, url  # noqa: E402

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
CERT = None         # (certificate, key), made by setUpModule

# RFC 9113 §7 error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, CANCEL, REFUSED_STREAM = 0, 1, 2, 8, 7


def setUpModule():
    global CERT
    if not H.h2_available():
        raise RuntimeError("test_h2.py needs python3-h2: run it with Debian's /usr/bin/python3 "
                           "(scripts/install-deps installs python3-h2)")
    missing = [n for n in ("openssl", "curl", "nghttp") if not shutil.which(n)]
    if missing:
        raise RuntimeError("test_h2.py needs %s in PATH (scripts/install-deps)" % ", ".join(missing))
    d = tempfile.mkdtemp(prefix="fc-h2-cert-")
    H._tmpdirs.append(d)
    CERT = H.make_cert(d)


def tearDownModule():
    if CERT and not H.KEEP:
        shutil.rmtree(os.path.dirname(CERT[0]), ignore_errors=True)


class H2Client:
    """Mixin before a ProxyTestCase: the daemon's first listener speaks
    HTTP/2 (http2: true, or TLS whose ALPN offers h2) and self.get() /
    self.conn() are HTTP/2 clients with RawConn's interface."""

    tls = False

    @classmethod
    def setUpClass(cls):
        if H.DIRECT:
            raise unittest.SkipTest("HTTP/2 tests need freshcached (FRESHCACHE_TEST_DIRECT=1)")
        if cls.tls:
            cls.listen_options = {"tls": {"certificate": CERT[0], "key": CERT[1]}}
        else:
            cls.listen_options = {"http2": True}
        super().setUpClass()

    def get(self, target, headers=None, method="GET", body=None, version=None, timeout=10.0):
        return H.h2_request(self.port, method, target, headers, body, timeout, tls=self.tls)

    def conn(self, timeout=10.0):
        return H.H2Conn(self.port, timeout, tls=self.tls)

    def scheme(self):
        return "https" if self.tls else "http"


def over_h2(base, without=None, tls=False, config=None):
    """A copy of the test class `base` whose clients speak HTTP/2.
    `without`: {method name: why it does not apply over HTTP/2}; those are
    left out (a non-callable attribute is not collected as a test).
    `config` is merged over the class's."""
    ns = {"tls": tls, "__module__": __name__,
          "__doc__": "%s over HTTP/2 (%s)" % (base.__name__, "TLS, ALPN h2" if tls else
                                             "cleartext, prior knowledge")}
    if config:
        ns["config"] = H.deep_merge(base.config, config)
    for name in (without or {}):
        if not callable(getattr(base, name, None)):
            raise AssertionError("%s has no test %s to leave out" % (base.__name__, name))
        ns[name] = None
    return type(base.__name__ + ("OverH2TLS" if tls else "OverH2"), (H2Client, base), ns)


RAW_BYTES = "writes HTTP/1.1 request bytes by hand"
BASIC_WITHOUT = {
    "test_pipelining": "no pipelining in HTTP/2: streams (CoalesceOverStreamsTest)",
    "test_http10_closes": "HTTP/1.0",
    "test_http10_keep_alive": "HTTP/1.0",
    "test_http10_without_host": "HTTP/1.0",
    "test_hop_by_hop_request_headers_removed":
        "HTTP/2 forbids connection-specific fields (RFC 9113 §8.2.2); the client cannot send them",
}
BODIES_WITHOUT = {"test_large_body_streamed_not_buffered": RAW_BYTES + " (StreamingTest)"}
# test-origin makes a 20 MiB body before its head goes out: slow under ASan
# on a busy machine, where the default 2s read_timeout gave 504s.
BODIES_CONFIG = {"origin": {"read_timeout": "10s"}}
REQUEST_BODY_WITHOUT = {
    "test_post_chunked_request_body": "chunked request framing is HTTP/1.1's",
    "test_post_body_sent_slowly": RAW_BYTES + " (UploadTest.test_upload_trickles_in)",
    "test_pipelined_posts": "pipelining (UploadTest.test_concurrent_uploads_on_one_connection)",
}

# Cleartext HTTP/2 with prior knowledge (listen[].http2: true).
BasicTestOverH2 = over_h2(basic.BasicTest, BASIC_WITHOUT)
StaticSiteTestOverH2 = over_h2(basic.StaticSiteTest)
FreshnessTestOverH2 = over_h2(rfc.FreshnessTest)
NotStoredTestOverH2 = over_h2(rfc.NotStoredTest)
VaryTestOverH2 = over_h2(rfc.VaryTest)
ClientConditionalTestOverH2 = over_h2(rfc.ClientConditionalTest)
BodiesTestOverH2 = over_h2(bodies.BodiesTest, BODIES_WITHOUT, config=BODIES_CONFIG)
RequestBodyTestOverH2 = over_h2(bodies.RequestBodyTest, REQUEST_BODY_WITHOUT)
DeployScenarioTestOverH2 = over_h2(deploy.DeployScenarioTest)
LastModifiedAfterDeployTestOverH2 = over_h2(deploy.LastModifiedAfterDeployTest)
PolicyPurgeTestOverH2 = over_h2(deploy.PolicyPurgeTest)
TargetedPurgeTestOverH2 = over_h2(deploy.TargetedPurgeTest)
SoftPurgeOriginDownTestOverH2 = over_h2(deploy.SoftPurgeOriginDownTest)
AfterPurgeRevalidateTestOverH2 = over_h2(deploy.AfterPurgeRevalidateTest)

# TLS with ALPN h2: the front end is the same, the transport differs.
BasicTestOverH2TLS = over_h2(basic.BasicTest, dict(
    BASIC_WITHOUT, test_via_and_forwarded_headers="X-Forwarded-Proto is https over TLS "
    "(TlsAlpnTest.test_forwarded_proto_https)"), tls=True)
ClientConditionalTestOverH2TLS = over_h2(rfc.ClientConditionalTest, tls=True)
BodiesTestOverH2TLS = over_h2(bodies.BodiesTest, BODIES_WITHOUT, tls=True,
                              config=BODIES_CONFIG)
RequestBodyTestOverH2TLS = over_h2(bodies.RequestBodyTest, REQUEST_BODY_WITHOUT, tls=True)


class H2Case(H2Client, H.ProxyTestCase):
    """Cleartext HTTP/2 with prior knowledge; tests below are HTTP/2's own."""

    def assertReset(self, r, code, msg=None):
        self.assertFalse(r.complete, msg or r)
        self.assertEqual(r.reset, code, "%sexpected RST_STREAM %d, got %r (complete %s)"
                         % (msg + ": " if msg else "", code, r.reset, r.complete))

    def assertStillServes(self, c=None):
        """The daemon (and connection `c`, if given) still answer."""
        seed = self.uniq()
        t = url("/t/body", size=100, seed=seed)
        r = c.request("GET", t) if c is not None else self.get(t)
        self.assertOk(r, expected_body(100, seed))


# ---------------------------------------------------------------------------


class RangeTest(H2Case):

    def stored(self):
        seed = self.uniq()
        t = url("/t/body", size=2000, seed=seed, etag=1, cc="max-age=60")
        body = expected_body(2000, seed)
        self.assertOk(self.get(t), body)
        r = self.get(t)
        self.assertHit(r)
        return t, body, r.header("ETag")

    def test_single_ranges(self):
        t, body, _ = self.stored()
        with self.conn() as c:
            for rng, first, last in (("bytes=100-199", 100, 199), ("bytes=-10", 1990, 1999),
                                     ("bytes=1990-3000", 1990, 1999), ("bytes=0-0", 0, 0)):
                r = c.request("GET", t, {"Range": rng})
                self.assertEqual(r.status, 206, "%s: %r" % (rng, r))
                self.assertTrue(r.complete, r)
                self.assertEqual(r.header("Content-Range"), "bytes %d-%d/2000" % (first, last), r)
                self.assertEqual(r.header("Content-Length"), str(last - first + 1), r)
                self.assertBody(r, body[first:last + 1], rng)
                self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_unsatisfiable_range_416(self):
        t, _, _ = self.stored()
        r = self.get(t, {"Range": "bytes=5000-"})
        self.assertEqual(r.status, 416, r)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.header("Content-Range"), "bytes */2000", r)
        self.assertEqual(r.body, b"")
        self.assertOriginCount(t, 1)

    def test_multiple_ranges_get_the_whole_body(self):
        t, body, _ = self.stored()
        r = self.get(t, {"Range": "bytes=0-1,5-6"})
        self.assertOk(r, body)
        self.assertEqual(r.header("Content-Length"), "2000")

    def test_if_range(self):
        t, body, etag = self.stored()
        self.assertIsNotNone(etag)
        r = self.get(t, {"Range": "bytes=10-19", "If-Range": etag})
        self.assertEqual(r.status, 206, r)
        self.assertBody(r, body[10:20])
        r = self.get(t, {"Range": "bytes=10-19", "If-Range": '"another"'})
        self.assertOk(r, body)

    def test_ranges_on_concurrent_streams(self):
        """Ten ranges of one object on ten streams at once, each exact."""
        seed = self.uniq()
        size = 3 * H.MiB + 7
        t = url("/t/body", size=size, seed=seed, cc="max-age=60")
        body = expected_body(size, seed)
        self.assertOk(self.get(t, timeout=30), body)
        spans = [(k * 300000 + 13, k * 300000 + 13 + 65536 * k) for k in range(10)]
        with self.conn(timeout=30) as c:
            sids = [c.send_request("GET", t, {"Range": "bytes=%d-%d" % s}) for s in spans]
            for (first, last), r in zip(spans, c.read_all(sids)):
                last = min(last, size - 1)
                self.assertEqual(r.status, 206, r)
                self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (first, last, size))
                self.assertBody(r, body[first:last + 1])
        self.assertOriginCount(t, 1)


class CoalesceOverStreamsTest(H2Case):
    """Coalescing (test_coalesce.py) when the waiting clients are streams:
    of one connection, and of several."""

    def results(self, rs):
        """(sent, done, Response) as test_coalesce's check_collapsed wants."""
        return [(r.sent_at, r.sent_at + r.elapsed, r) for r in rs]

    def check_collapsed(self, results, body):
        coalesce.CoalesceTest.check_collapsed(self, results, body)

    def test_50_streams_on_one_connection_one_origin_request(self):
        seed = self.uniq()
        t = url("/t/body", size=50000, delay_ms=500, cc="max-age=60", seed=seed)
        t0 = time.monotonic()
        with self.conn(timeout=20) as c:
            sids = [c.send_request("GET", t) for _ in range(50)]
            rs = c.read_all(sids)
        self.assertLess(time.monotonic() - t0, 3.0, "streams waited far longer than the one fetch")
        self.assertOriginCount(t, 1)
        self.check_collapsed(self.results(rs), expected_body(50000, seed))
        self.assertHit(self.get(t))
        self.assertOriginCount(t, 1)

    def test_streams_of_several_connections(self):
        """5 connections x 10 streams on one cold key: one origin request."""
        seed = self.uniq()
        t = url("/t/body", size=70000, delay_ms=500, cc="max-age=60", seed=seed)

        def client(i, barrier):
            with self.conn(timeout=20) as c:
                barrier.wait()
                sids = [c.send_request("GET", t) for _ in range(10)]
                return c.read_all(sids)
        rs = [r for group in H.parallel(5, client) for r in group]
        self.assertEqual(len(rs), 50)
        self.assertOriginCount(t, 1)
        self.check_collapsed(self.results(rs), expected_body(70000, seed))

    def test_collapsed_streaming_chunked_body(self):
        seed = self.uniq()
        size = H.MiB + 12345
        t = url("/t/body", size=size, chunked=1, chunk_size=262144, chunk_delay_ms=100,
                delay_ms=200, cc="max-age=60", seed=seed)
        with self.conn(timeout=20) as c:
            sids = [c.send_request("GET", t) for _ in range(20)]
            rs = c.read_all(sids)
        self.assertOriginCount(t, 1)
        self.check_collapsed(self.results(rs), expected_body(size, seed))

    def test_different_keys_not_serialized(self):
        seeds = [self.uniq() for _ in range(5)]
        targets = [url("/t/body", size=100, delay_ms=300, cc="max-age=60", seed=s) for s in seeds]
        t0 = time.monotonic()
        with self.conn(timeout=20) as c:
            rs = c.read_all([c.send_request("GET", t) for t in targets])
        self.assertLess(time.monotonic() - t0, 1.5, "streams for different keys were serialized")
        for i, r in enumerate(rs):
            self.assertOk(r, expected_body(100, seeds[i]))
            self.assertOriginCount(targets[i], 1)

    def test_uncacheable_response_reaches_every_stream(self):
        seed = self.uniq()
        t = url("/t/body", size=3000, delay_ms=300, cc="no-store", seed=seed)
        with self.conn(timeout=20) as c:
            rs = c.read_all([c.send_request("GET", t) for _ in range(10)])
        for i, r in enumerate(rs):
            self.assertOk(r, expected_body(3000, seed))
            self.assertFalse(r.cache_status.get("hit"), "stream %d: %r" % (i, r))
        n = self.origin.count(t)
        self.assertGreaterEqual(n, 1)
        self.assertLessEqual(n, 10)


class SharedRevalidationTest(H2Case):
    """Requests read in one pass of the worker's loop that must revalidate
    the same stored copy share one conditional request, sent after all of
    them arrived (exchange.c).  Several HEADERS in one write are read in
    one pass, which makes it deterministic here."""

    def send_together(self, c, target, n, headers=None):
        return c.read_all(c.send_requests("GET", [target] * n, headers=headers))

    def stored_no_cache(self, seed, **kw):
        t = url("/t/body", size=3000, seed=seed, etag=1, cc="no-cache", **kw)
        self.assertOk(self.get(t), expected_body(3000, seed))
        self.assertOriginCount(t, 1)
        return t

    def test_one_conditional_request_for_streams_read_together(self):
        seed = self.uniq()
        t = self.stored_no_cache(seed)
        with self.conn() as c:
            rs = self.send_together(c, t, 10)
        self.assertOriginCount(t, 2)
        conditional = self.origin.log(t)[1]
        self.assertIsNotNone(H.req_header(conditional, "If-None-Match"), conditional)
        collapsed = 0
        for r in rs:
            self.assertOk(r, expected_body(3000, seed))
            self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
            collapsed += bool(r.cache_status.get("collapsed"))
        self.assertEqual(collapsed, 9, [r.header("Cache-Status") for r in rs])
        # requests that come later are validated again: never by an answer
        # to a request sent before they arrived
        r = self.get(t)
        self.assertOk(r, expected_body(3000, seed))
        self.assertOriginCount(t, 3)

    def test_changed_content_reaches_every_stream(self):
        key = self.uniq()
        t = url("/t/mutable", key=key, etag=1, cc="no-cache")
        self.origin.set(key, "old")
        self.assertOk(self.get(t), b"old\n")
        self.origin.set(key, "new")
        with self.conn() as c:
            rs = self.send_together(c, t, 8)
        for r in rs:
            self.assertOk(r, b"new\n")
            self.assertEqual(r.cache_status.get("fwd-status"), 200, r)
        self.assertOriginCount(t, 2)

    def test_answer_not_stored_each_asks_on_its_own(self):
        """The origin's answer to the shared request is not stored (a 503):
        it is the leader's; the others go to the origin themselves."""
        key = self.uniq()
        t = url("/t/mutable", key=key, etag=1, cc="no-cache")
        self.origin.set(key, "up")
        self.assertOk(self.get(t), b"up\n")
        self.origin.set(key, status=503)
        with self.conn() as c:
            rs = self.send_together(c, t, 4)
        self.assertEqual([r.status for r in rs], [503] * 4, rs)
        self.assertOriginCount(t, 1 + 1 + 3)

    def test_requests_with_credentials_revalidate_their_own(self):
        seed = self.uniq()
        t = url("/t/body", size=500, seed=seed, etag=1, cc="public, no-cache")
        self.assertOk(self.get(t), expected_body(500, seed))
        with self.conn() as c:
            rs = self.send_together(c, t, 4, headers={"Authorization": "Bearer x"})
        for r in rs:
            self.assertOk(r, expected_body(500, seed))
            self.assertFalse(r.cache_status.get("collapsed"), r)
        self.assertOriginCount(t, 5)

    def test_late_joiners_answered_when_the_leader_leaves(self):
        """An expired copy's revalidation, once sent, is joined by the
        streams that come during its round trip (exchange.c); the stream
        that caused it is reset meanwhile: the others still get answers."""
        seed = self.uniq()
        t = url("/t/body", size=3000, seed=seed, etag=1, cc="max-age=2", delay_ms=600)
        self.assertOk(self.get(t), expected_body(3000, seed))
        time.sleep(3.1)
        with self.conn() as c:
            lead = c.send_request("GET", t)
            time.sleep(0.15)
            sids = []
            for _ in range(3):          # separate writes: passes of their own
                sids.append(c.send_request("GET", t))
                time.sleep(0.05)
            c.reset_stream(lead)
            rs = c.read_all(sids)
        for r in rs:
            self.assertOk(r, expected_body(3000, seed))
            self.assertTrue(r.cache_status.get("collapsed"), r)
        self.assertOriginCount(t, 2)    # the fetch went on without its stream
        self.assertStillServes()

    def test_leader_reset_before_the_send(self):
        """The first stream is reset in the same write as the others: its
        revalidation is not sent for it, the others still get answers."""
        seed = self.uniq()
        t = self.stored_no_cache(seed)
        with self.conn() as c:
            c.corked = True
            try:
                sids = [c.send_request("GET", t) for _ in range(5)]
                c.h2.reset_stream(sids[0])
            finally:
                c.corked = False
            c.flush()
            rs = c.read_all(sids[1:])
        for r in rs:
            self.assertOk(r, expected_body(3000, seed))
        # nobody sent the shared one: each of the 4 revalidated on its own
        self.assertOriginCount(t, 1 + 4)
        self.assertEqual(sum(bool(r.cache_status.get("collapsed")) for r in rs), 0, rs)
        self.assertStillServes()



class SharedRevalidationFailureTest(H2Case):
    """The shared revalidation fails (the origin is gone): every request
    that joined it answers as its leader does, stale-if-error included."""

    def test_origin_down(self):
        seed = self.uniq()
        plain = url("/t/body", size=700, seed=seed, etag=1, cc="no-cache")
        sie = url("/t/body", size=800, seed=seed, etag=1, cc="max-age=0, stale-if-error=600")
        self.assertOk(self.get(plain), expected_body(700, seed))
        self.assertOk(self.get(sie), expected_body(800, seed))
        fresh = url("/t/body", size=100, seed=seed, cc="max-age=600")
        self.assertOk(self.get(fresh), expected_body(100, seed))
        self.origin.stop()          # connections to it are refused from now on
        with self.conn() as c:
            rs = SharedRevalidationTest.send_together(self, c, plain, 5)
        self.assertEqual([r.status for r in rs], [502] * 5, rs)
        with self.conn() as c:
            rs = SharedRevalidationTest.send_together(self, c, sie, 5)
        for r in rs:
            self.assertOk(r, expected_body(800, seed))
            self.assertEqual(r.cache_status.get("detail"), "stale-if-error", r)
        self.assertHit(self.get(fresh))     # and the proxy is well


class SharedRevalidationOffTest(H2Case):
    config = {"cache": {"coalesce": False}}

    def test_coalesce_off_sends_each(self):
        seed = self.uniq()
        t = SharedRevalidationTest.stored_no_cache(self, seed)
        with self.conn() as c:
            rs = SharedRevalidationTest.send_together(self, c, t, 4)
        for r in rs:
            self.assertOk(r, expected_body(3000, seed))
            self.assertFalse(r.cache_status.get("collapsed"), r)
        self.assertOriginCount(t, 5)


class StreamingTest(H2Case):

    def test_large_body_streamed_not_buffered(self):
        """The first DATA reaches the client before the origin has finished."""
        seed = self.uniq()
        size = 256 * 1024
        t = url("/t/body", size=size, chunk_size=65536, chunk_delay_ms=400, cc="no-store",
                seed=seed)
        with self.conn() as c:
            sid = c.send_request("GET", t)
            r = c.streams[sid]
            self.assertTrue(c.wait(lambda: r.received > 0, 5), "no DATA within 5s")
            first = time.monotonic() - r.sent_at
            self.assertOk(c.response(sid), expected_body(size, seed))
        self.assertLess(first, 0.8, "nothing for %.2fs: the response was buffered, not streamed"
                        % first)

    def test_small_response_not_stuck_behind_a_large_one(self):
        """Streams are multiplexed: a small hit on a connection busy with a
        large body that the client reads slowly is answered at once."""
        seed = self.uniq()
        big = url("/t/body", size=8 * H.MiB, cc="max-age=60", seed=seed)
        small = url("/t/body", size=10, cc="max-age=60", seed=seed)
        self.assertOk(self.get(big, timeout=30), expected_body(8 * H.MiB, seed))
        self.assertOk(self.get(small), expected_body(10, seed))
        with H.H2Conn(self.port, 10, auto_ack=False) as c:
            b = c.send_request("GET", big)
            self.assertTrue(c.wait(lambda: c.streams[b].received >= 65535 or None, 5))
            # the connection window (65535) is spent on the big stream: give
            # the connection room, the big stream none
            c.h2.increment_flow_control_window(1 << 20)
            c.flush()
            s = c.send_request("GET", small)
            r = c.response(s, timeout=5)
            self.assertOk(r, expected_body(10, seed))
            self.assertHit(r)
            self.assertTrue(c.streams[b].open, "the big stream ended without being read")


class UploadTest(H2Case):

    def test_upload_of_several_mebibytes(self):
        data = random.Random(11).randbytes(6 * H.MiB + 5)
        t = url("/t/echo", raw=1, n=self.uniq())
        r = self.get(t, {"Content-Type": "application/octet-stream"}, method="POST", body=data,
                     timeout=60)
        self.assertOk(r, data)
        self.assertEqual(r.header("X-Echo-Body-Length"), str(len(data)))
        self.assertEqual(self.origin.count_method("POST", t), 1)

    def test_concurrent_uploads_on_one_connection(self):
        """Three uploads interleaved on one connection, each echoed whole."""
        datas = [random.Random(k).randbytes(3 * H.MiB + k) for k in range(3)]
        targets = [url("/t/echo", raw=1, n=self.uniq()) for _ in datas]
        with self.conn(timeout=60) as c:
            sids = [c.send_request("POST", t, {"content-length": str(len(d))}, end_stream=False)
                    for t, d in zip(targets, datas)]
            views = [memoryview(d) for d in datas]
            step = 100000
            while any(views):       # round-robin, within each stream's window
                for k, sid in enumerate(sids):
                    chunk, views[k] = views[k][:step], views[k][step:]
                    if chunk:
                        c.send_body(sid, bytes(chunk), end_stream=not views[k])
            for d, r in zip(datas, c.read_all(sids)):
                self.assertOk(r, d)

    def test_upload_trickles_in(self):
        t = url("/t/echo", raw=1, n=self.uniq())
        data = bytes(range(256)) * 400
        with self.conn() as c:
            sid = c.send_request("POST", t, {"content-length": str(len(data))}, end_stream=False)
            for i in range(0, len(data), 25600):
                c.send_body(sid, data[i:i + 25600], end_stream=i + 25600 >= len(data))
                time.sleep(0.05)
            self.assertOk(c.response(sid), data)

    def test_empty_post_and_put(self):
        t = url("/t/echo", raw=1, n=self.uniq())
        r = self.get(t, method="POST", body=b"")
        self.assertOk(r, b"")
        self.assertEqual(r.header("X-Echo-Body-Length"), "0")
        r = self.get(t, method="PUT", body=b"abc")
        self.assertOk(r, b"abc")
        self.assertEqual(r.header("X-Echo-Method"), "PUT")

    def test_post_without_content_length(self):
        """HTTP/2 needs no Content-Length: DATA frames until END_STREAM."""
        t = url("/t/echo", n=self.uniq())
        data = b"no length " * 5000
        with self.conn() as c:
            sid = c.send_request("POST", t, end_stream=False)
            c.send_body(sid, data)
            r = c.response(sid)
        self.assertEqual(r.status, 200, r)
        seen = json.loads(r.body)
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["body_length"], len(data), seen)
        self.assertEqual(seen["body_fnv"], "%016x" % H.fnv1a64(data))


class SlowAcceptOrigin:
    """An origin whose accept queue is full when the proxy connects: its
    SYN is dropped and the connect completes only when the kernel sends
    it again (after about 1s), once open() has made room.  Then it echoes
    request bodies (Content-Length or chunked) as test-origin's
    /t/echo?raw=1 does, one request per connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        self.bodies = []
        self.thread = None

    def fill(self):
        """Connect until the accept queue is full (a connect hangs)."""
        for _ in range(16):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(s)
            time.sleep(0.05)
            try:
                s.getpeername()
            except OSError:     # not connected: the queue is full
                return
        raise AssertionError("could not fill the accept queue")

    def open(self, after, window=2.5):
        """Accept (dropping the fillers) after `after` seconds, then serve
        for `window` seconds."""
        self.thread = threading.Thread(target=self.serve, args=(after, window), daemon=True)
        self.thread.start()

    def serve(self, after, window):
        """Accept for `window` seconds, then leave the queue to fill again."""
        time.sleep(after)
        for s in self.fillers:
            s.close()
        self.fillers = []
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    def join(self):
        self.thread.join(10)

    def answer(self, c):
        with c:
            c.settimeout(10)
            buf = b""
            try:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length: *(\d+)", head)
                if m:
                    n = int(m.group(1))
                    while len(rest) < n:
                        d = c.recv(1 << 20)
                        if not d:
                            return
                        rest += d
                    body = rest[:n]
                else:       # chunked
                    while not rest.endswith(b"0\r\n\r\n"):
                        d = c.recv(1 << 20)
                        if not d:
                            return
                        rest += d
                    body, p = b"", 0
                    while True:
                        eol = rest.index(b"\r\n", p)
                        size = int(rest[p:eol].split(b";")[0], 16)
                        if size == 0:
                            break
                        body += rest[eol + 2:eol + 2 + size]
                        p = eol + 2 + size + 2
                self.bodies.append(len(body))
                c.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % len(body) + body)
            except (OSError, ValueError):
                return

    def close(self):
        self.sock.close()
        for s in self.fillers:
            s.close()


class SlowAcceptCase(H2Case):
    """The origin is a SlowAcceptOrigin."""

    @classmethod
    def setUpClass(cls):
        cls.slow = SlowAcceptOrigin()
        cls.origin_port = cls.slow.port
        cls.addClassCleanup(cls.slow.close)
        super().setUpClass()

    def setUp(self):
        self._uniq = 0          # test-origin is not the origin here: no reset

    def tearDown(self):
        self.slow.join()        # its accept window is over: the next test fills it again
        super().tearDown()

    def http11_post(self, c, data, timeout):
        """POST /echo with `data` over HTTP/1.1 on `c`, sent from a thread
        (the proxy may stop reading it): the response."""
        th = threading.Thread(target=lambda: c.send(H.build_request(
            "POST", "/echo", None, data, host="127.0.0.1:%d" % self.port)), daemon=True)
        th.start()
        r = c.read_response("POST", timeout=timeout)
        th.join(5)
        return r


class UploadWhileConnectingTest(SlowAcceptCase):
    """More than 1 MiB of upload arrives while the origin connection is
    still being made: the exchange stops taking the upload (paused); once
    connected, the queued bytes go out in one write.  The upload must
    resume then: a write event (on_drain) is all that resumed it, and a
    socket that takes everything at once arms none (the upload stalled
    until origin.read_timeout: a 504)."""

    config = {"origin": {"connect_timeout": "5s", "read_timeout": "3s"}}

    def test_upload_resumes_after_connect(self):
        self.slow.fill()
        self.slow.open(0.5)
        data = random.Random(5).randbytes(2 * H.MiB + 3)
        t0 = time.monotonic()
        with self.conn(timeout=20) as c:
            r = c.request("POST", "/echo", {"content-type": "application/octet-stream"},
                          body=data, timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertOk(r, data)
        self.assertIn(len(data), self.slow.bodies)
        self.assertLess(elapsed, 2.9, "the upload waited for origin.read_timeout")

    def test_uploads_ending_while_paused_keep_the_connection_window(self):
        """An upload whose END_STREAM arrives while it is paused is never
        resumed: the DATA held back (not acknowledged) must still go back
        to the connection's window when the stream closes.  They did not:
        each such upload shrank the window for good, and after six the
        connection's uploads stalled (504s).  (exchange_upload_end now
        resumes it; on_stream_close gives back what is left.)"""
        data = random.Random(7).randbytes(H.MiB + 120 * 1024)
        with self.conn(timeout=20) as c:
            for i in range(7):
                self.slow.fill()
                self.slow.open(0.3, window=1.6)
                r = c.request("POST", "/echo", body=data, timeout=20)
                self.assertEqual(r.status, 200, "upload %d: %r" % (i, r))
                self.assertEqual(len(r.body), len(data))
                self.slow.join()
            self.assertIsNone(c.goaway)

    def test_uploads_reset_while_paused_keep_the_connection_window(self):
        """The client resets its stream in the middle of a paused upload:
        the DATA held back goes back to the connection's window too (it
        did not: the final upload stalled, 504)."""
        data = random.Random(8).randbytes(H.MiB + 120 * 1024)
        with self.conn(timeout=20) as c:
            for i in range(7):
                self.slow.fill()
                self.slow.open(0.3, window=1.6)
                sid = c.send_request("POST", "/echo", {"content-length": str(len(data) + 1)},
                                     end_stream=False)
                c.send_body(sid, data, end_stream=False)      # one byte short: never ends
                c.reset_stream(sid)
                self.slow.join()
            self.slow.fill()
            self.slow.open(0.0, window=1.6)
            r = c.request("POST", "/echo", body=data, timeout=20)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.body), len(data))
            self.assertIsNone(c.goaway)

    def test_http11_keep_alive_after_upload_ended_while_paused(self):
        """The body's end was already read when the upload paused: the
        connection must read the next request after the response (it
        stopped reading for good, and no client_timeout applied)."""
        data = random.Random(9).randbytes(H.MiB + 5000)
        with H.RawConn(self.port, timeout=10) as c:
            self.slow.fill()
            self.slow.open(0.3, window=1.6)
            self.assertOk(self.http11_post(c, data, 10), data)
            self.slow.join()
            self.slow.fill()
            self.slow.open(0.0, window=1.6)
            r = c.request("POST", "/echo", body=b"next", timeout=5)
            self.assertOk(r, b"next")

    def test_http11_upload_resumes_after_connect(self):
        """The same over HTTP/1.1 (same exchange code; there the paused
        upload stops reading the client's socket)."""
        self.slow.fill()
        self.slow.open(0.5)
        data = random.Random(6).randbytes(3 * H.MiB + 1)
        t0 = time.monotonic()
        with H.RawConn(self.port, timeout=20) as c:
            sent = {}

            def upload():
                try:
                    c.send(H.build_request("POST", "/echo",
                                           {"Content-Type": "application/octet-stream"}, data,
                                           host="127.0.0.1:%d" % self.port))
                    sent["ok"] = True
                except OSError as e:
                    sent["error"] = e
            th = threading.Thread(target=upload, daemon=True)
            th.start()
            r = c.read_response("POST", timeout=20)
            th.join(5)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertOk(r, data)
        self.assertEqual(sent, {"ok": True})
        self.assertIn(len(data), self.slow.bodies)
        self.assertLess(elapsed, 2.9, "the upload waited for origin.read_timeout")



class PausedUploadIsNotSlowTest(SlowAcceptCase):
    """limits.min_body_rate does not count the time freshcache itself held
    an upload back: here the origin accepts only after 2.5 s, the upload
    (over 1 MiB) is paused meanwhile, and header_timeout (the rate's
    window) is 1 s.  Both protocols."""

    config = {"origin": {"connect_timeout": "5s", "read_timeout": "5s"},
              "limits": {"header_timeout": "1s", "min_body_rate": "1KiB"}}

    def test_h2_upload_paused_for_the_origin_not_cut(self):
        self.slow.fill()
        self.slow.open(2.5)
        data = random.Random(11).randbytes(2 * H.MiB + 5)
        with self.conn(timeout=20) as c:
            r = c.request("POST", "/echo", body=data, timeout=20)
            self.assertOk(r, data)
            self.assertIsNone(c.goaway)
        self.assertIn(len(data), self.slow.bodies)

    def test_http11_upload_paused_for_the_origin_not_cut(self):
        self.slow.fill()
        self.slow.open(2.5)
        data = random.Random(12).randbytes(3 * H.MiB + 1)
        with H.RawConn(self.port, timeout=20) as c:
            self.assertOk(self.http11_post(c, data, 20), data)
        self.assertIn(len(data), self.slow.bodies)


class RequestFieldsTest(H2Case):

    def echo(self, headers, c=None):
        t = url("/t/echo", n=self.uniq())
        r = (c.request("GET", t, headers) if c else self.get(t, headers))
        self.assertEqual(r.status, 200, r)
        seen = json.loads(r.body)
        return seen, [(k.lower(), v) for k, v in seen["headers"]]

    def test_authority_becomes_host(self):
        seen, hs = self.echo({"Host": "www.example.test"})
        self.assertEqual([v for k, v in hs if k == "host"], ["www.example.test"], seen)
        self.assertEqual(seen["version"], "HTTP/1.1", "the origin is spoken to in HTTP/1.1")
        self.assertEqual([v for k, v in hs if k == "x-forwarded-proto"], ["http"], seen)
        self.assertIn("1.1 freshcache", ", ".join(v for k, v in hs if k == "via"), seen)

    def test_cookies_joined_for_the_origin(self):
        """HTTP/2 may split Cookie into several fields; the HTTP/1.1 origin
        gets one (RFC 9113 §8.2.3)."""
        seen, hs = self.echo([("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])
        self.assertEqual([v for k, v in hs if k == "cookie"], ["a=1; b=2; c=3"], seen)

    def test_many_fields_and_long_values(self):
        fields = [("x-f%02d" % i, "v%d-" % i + "y" * 200) for i in range(40)]
        seen, hs = self.echo(fields)
        for k, v in fields:
            self.assertIn((k, v), hs)

    def test_same_fields_many_times_on_one_connection(self):
        """HPACK's dynamic table in use: the same fields sent on 30
        streams arrive intact each time."""
        with self.conn() as c:
            for i in range(30):
                seen, hs = self.echo({"X-Repeat": "same value", "X-N": str(i)}, c)
                self.assertIn(("x-repeat", "same value"), hs)
                self.assertIn(("x-n", str(i)), hs)

    def test_no_server_push(self):
        """The client allows push, the page links a preload: nothing pushed."""
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed, cc="max-age=60", ct="text/html",
                hdr="Link: </style.css>; rel=preload; as=style")
        with self.conn() as c:
            self.assertEqual(c.h2.local_settings.enable_push, 1)
            for _ in range(2):
                self.assertOk(c.request("GET", t), expected_body(10, seed))
            pushed = [e for e in c.events if type(e).__name__ == "PushedStreamReceived"]
            self.assertEqual(pushed, [])

    def test_server_settings(self):
        with self.conn() as c:
            self.assertTrue(c.wait(lambda: c.remote_settings, 5), "no SETTINGS from the server")
            s = c.remote_settings
            self.assertEqual(s.get(0x3), 100, "SETTINGS_MAX_CONCURRENT_STREAMS (default): %r" % s)
            self.assertEqual(s.get(0x6), 16384, "SETTINGS_MAX_HEADER_LIST_SIZE = "
                             "limits.max_header_bytes: %r" % s)
            self.assertEqual(s.get(0x2), 0, "SETTINGS_ENABLE_PUSH: %r" % s)


class OriginFailsMidBodyTest(H2Case):
    """The origin cuts the body short: the stream is reset (never ends with
    END_STREAM), nothing is stored, and the connection with its other
    streams goes on."""

    def test_origin_closes_mid_body(self):
        seed = self.uniq()
        t = url("/t/close-mid-body", size=200000, seed=seed)      # max-age=60
        with self.conn() as c:
            other = url("/t/body", size=300000, delay_ms=300, cc="max-age=60", seed=seed)
            o = c.send_request("GET", other)
            sid = c.send_request("GET", t)
            r = c.response(sid)
            self.assertEqual(r.status, 200, r)
            self.assertReset(r, INTERNAL_ERROR, "a truncated origin body")
            self.assertLess(len(r.body), 200000)
            self.assertEqual(r.body, expected_body(200000, seed)[:len(r.body)],
                             "partial body is not a prefix of the origin's bytes")
            self.assertOk(c.response(o), expected_body(300000, seed))
            self.assertStillServes(c)
            self.assertFalse(c.eof)
            self.assertIsNone(c.goaway)
        self.assertOriginCount(t, 1)
        # nothing was stored
        r = self.get(t)
        self.assertFalse(r.complete and r.status == 200, r)
        self.assertOriginCount(t, 2)

    def test_origin_closes_mid_body_for_collapsed_streams(self):
        seed = self.uniq()
        t = url("/t/close-mid-body", size=300000, seed=seed, delay_ms=200)
        with self.conn() as c:
            rs = c.read_all([c.send_request("GET", t) for _ in range(5)])
            for i, r in enumerate(rs):
                self.assertFalse(r.complete, "stream %d looks complete: %r" % (i, r))
                if r.status == 200:
                    self.assertReset(r, INTERNAL_ERROR, "stream %d" % i)
                else:
                    self.assertIsNone(r.status, r)
            self.assertStillServes(c)


class OriginStallsTest(H2Case):
    # origin.read_timeout: 2s (the default test config)

    def test_origin_stalls_mid_body(self):
        seed = self.uniq()
        t = url("/t/body", size=100000, chunked=1, chunk_size=40000, chunk_delay_ms=4000,
                cc="max-age=60", seed=seed)
        t0 = time.monotonic()
        with self.conn() as c:
            r = c.request("GET", t)
            self.assertEqual(r.status, 200, r)
            self.assertReset(r, INTERNAL_ERROR, "a stalled origin body")
            self.assertEqual(r.body, expected_body(100000, seed)[:len(r.body)])
            self.assertLess(time.monotonic() - t0, 3.8, "stalled body not cut at read_timeout")
            self.assertStillServes(c)

    def test_origin_slow_gives_504(self):
        t = url("/t/body", size=10, delay_ms=4000, seed=self.uniq())
        r = self.get(t)
        self.assertEqual(r.status, 504, r)
        self.assertTrue(r.complete, r)


class OriginDownTest(H2Case):
    origin_down = True

    def test_502_and_the_connection_goes_on(self):
        with self.conn() as c:
            for _ in range(3):
                r = c.request("GET", url("/t/body", size=10, seed=self.uniq()))
                self.assertEqual(r.status, 502, r)
                self.assertTrue(r.complete, r)
                self.assertFalse(r.cache_status.get("hit"), r)
            self.assertFalse(c.eof)


class AccessLogTest(H2Case):
    """One line per stream, the protocol HTTP/2.0 (test_ops.py's format)."""

    @classmethod
    def setUpClass(cls):
        cls.access_dir = tempfile.mkdtemp(prefix="fc-h2-log-")
        H._tmpdirs.append(cls.access_dir)
        cls.addClassCleanup(shutil.rmtree, cls.access_dir, True)
        cls.access_path = os.path.join(cls.access_dir, "access.log")
        cls.config = {"log": {"access": cls.access_path}}
        super().setUpClass()

    lines_for = ops.AccessLogTest.lines_for
    read_access = ops.AccessLogTest.read_access
    parse = ops.AccessLogTest.parse
    cache_field = ops.AccessLogTest.cache_field

    def test_fields(self):
        seed = self.uniq()
        t = url("/t/body", size=1234, seed=seed, cc="max-age=60", delay_ms=150)
        hs = {"Referer": "http://example.com/from?x=1", "User-Agent": "h2-test/1.0 (%s)" % seed}
        with self.conn() as c:
            r1 = c.request("GET", t, hs)
            r2 = c.request("GET", t, hs)
            r3 = c.request("HEAD", t)
        self.assertHit(r2)
        lines = self.lines_for(seed, n=3)
        self.assertEqual(len(lines), 3, lines)
        parsed = {d["request"].split(" ")[0] + ("-hit" if d["cache"] == "hit" else ""): d
                  for d in map(self.parse, lines)}
        self.assertEqual(sorted(parsed), ["GET", "GET-hit", "HEAD-hit"], lines)
        miss, hit, head = parsed["GET"], parsed["GET-hit"], parsed["HEAD-hit"]
        self.assertEqual(miss["request"], "GET %s HTTP/2.0" % t)
        self.assertEqual(hit["request"], "GET %s HTTP/2.0" % t)
        self.assertEqual(head["request"], "HEAD %s HTTP/2.0" % t)
        for d in (miss, hit, head):
            self.assertEqual(d["client"], "127.0.0.1")
            self.assertEqual(d["status"], "200")
        self.assertEqual(miss["bytes"], "1234")
        self.assertEqual(hit["bytes"], "1234")
        self.assertEqual(head["bytes"], "0")
        self.assertEqual(miss["referer"], hs["Referer"])
        self.assertEqual(miss["ua"], hs["User-Agent"])
        self.assertEqual(head["ua"], "-")
        self.assertEqual(miss["cache"], self.cache_field(r1))
        self.assertEqual(hit["cache"], self.cache_field(r2))
        self.assertEqual(head["cache"], self.cache_field(r3))
        self.assertGreaterEqual(int(miss["origin_ms"]), 140)
        self.assertEqual(hit["origin_ms"], "-1")

    def test_streams_of_one_connection_each_logged(self):
        seed = self.uniq()
        targets = [url("/t/body", size=10 + i, seed=seed, cc="max-age=60") for i in range(8)]
        with self.conn() as c:
            for r in c.read_all([c.send_request("GET", t) for t in targets]):
                self.assertEqual(r.status, 200)
        lines = self.lines_for(seed, n=8)
        got = sorted(self.parse(ln)["request"] for ln in lines)
        self.assertEqual(got, sorted("GET %s HTTP/2.0" % t for t in targets))

    def test_404(self):
        seed = self.uniq()
        t = url("/t/body", size=5, seed=seed, status=404)
        self.assertEqual(self.get(t).status, 404)
        d = self.parse(self.lines_for(seed)[0])
        self.assertEqual((d["request"], d["status"], d["bytes"]), ("GET %s HTTP/2.0" % t, "404", "5"))


class MetricsTest(H2Case):

    def metrics(self):
        status, text = self.proxy.admin("GET", "/metrics")
        self.assertEqual(status, 200, text)
        return ops.parse_metrics(self, text)[0]

    def settled_metrics(self):
        """The metrics once no connection is open and the accepted count
        stays put for 100 ms: the harness's readiness probe (a connect and
        close) may still be in the accept queue when a test begins."""
        prev = self.metrics()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.1)
            cur = self.metrics()
            key = "freshcache_connections_accepted_total"
            if cur[key] == prev[key] and cur["freshcache_connections"] == 0:
                return cur
            prev = cur
        return prev

    def test_streams_counted_as_requests_one_connection(self):
        before = self.settled_metrics()
        seed = self.uniq()
        t = url("/t/body", size=4000, seed=seed, cc="max-age=60")
        with self.conn() as c:
            for _ in range(3):
                self.assertOk(c.request("GET", t), expected_body(4000, seed))
            open_now = self.metrics()["freshcache_connections"]
        time.sleep(0.3)     # counters settle after the last response
        after = self.metrics()
        d = {k: after[k] - before.get(k, 0) for k in after}
        self.assertEqual(d["freshcache_requests_total"], 3, d)
        self.assertEqual(d["freshcache_cache_hits_total"], 2, d)
        self.assertEqual(d["freshcache_cache_misses_total"], 1, d)
        self.assertEqual(d["freshcache_origin_requests_total"], 1, d)
        self.assertEqual(d["freshcache_connections_accepted_total"], 1, d)
        self.assertGreaterEqual(d["freshcache_bytes_sent_total"], 12000, d)
        self.assertEqual(open_now, 1, "freshcache_connections while the HTTP/2 connection is open")
        self.assertEqual(after["freshcache_connections"], 0, "the closed connection still counted")


class IdleAndBusyAgainTest(H2Case):
    """An idle connection gives every page of nghttp2's back — the frame
    buffer, the stream map, the session's state packed into a small copy
    — and its socket buffers (src/server/h2_mem.c); every one of many
    connections must then work as before, again and again: busy
    (concurrent streams, a body larger than the frame buffer, an upload,
    large response fields), idle, a PING while idle, busy again.  Under
    ASan this is the use-after-give-back check: a page given back reads
    as zeros, so anything nghttp2 still needed from it and did not get
    back would break the responses here."""

    tls = True
    N = 24
    # A response head larger than the frame buffer (its fields come from
    # the request's query: the request must be allowed as large, and not
    # be a GET, whose target makes a cache key of bounded length).
    config = {"limits": {"max_header_bytes": "64KiB"}}

    def busy(self, c, seed, round_):
        small = url("/t/body", size=300, seed=seed, cc="max-age=60")
        large = url("/t/body", size=100000, seed=seed + "L", cc="max-age=60")
        big_head = url("/t/body", size=10, seed=seed, hdr=["X-Big-%d:%s" % (k, "b" * 7000)
                                                           for k in range(3)])
        echo = url("/t/echo", raw=1, n="%s-%d" % (seed, round_))
        data = random.Random(seed + str(round_)).randbytes(40000)
        sids = [c.send_request("GET", small), c.send_request("GET", large),
                c.send_request("GET", small, {"X-Long": "v" * 6000}),
                c.send_request("POST", big_head, body=b"")]
        up = c.send_request("POST", echo, {"content-length": str(len(data))}, end_stream=False)
        c.send_body(up, data)
        r_small, r_large, r_long, r_big, r_up = c.read_all(sids + [up])
        self.assertOk(r_small, expected_body(300, seed))
        self.assertOk(r_large, expected_body(100000, seed + "L"))
        self.assertOk(r_long, expected_body(300, seed))
        self.assertOk(r_big, expected_body(10, seed))
        for k in range(3):
            self.assertEqual(r_big.header("X-Big-%d" % k), "b" * 7000)
        self.assertOk(r_up, data)

    def ping(self, c, opaque):
        import h2.events
        c.h2.ping(opaque)
        c.flush()
        acked = c.wait(lambda: any(isinstance(e, h2.events.PingAckReceived) and
                                   e.ping_data == opaque for e in c.events))
        self.assertTrue(acked, "no PING ACK on an idle connection")

    def test_hpack_table_survives_idle(self):
        """The client's HPACK table is part of the session packed away
        while idle (h2_mem_sleep): fields the client indexed before an
        idle spell are named by their index after it, and must decode to
        what they were."""
        c = self.conn(timeout=10)
        try:
            fields = {"x-hpack-%d" % k: "%s-%d" % (self.uniq(), k) for k in range(20)}
            for round_ in range(3):
                r = c.request("GET", url("/t/echo", n=round_), fields)
                self.assertEqual(r.status, 200)
                got = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
                for k, v in fields.items():
                    self.assertEqual(got.get(k), v, "round %d" % round_)
                time.sleep(0.6)     # idle: given back 200 ms after the last activity
        finally:
            c.close()

    def test_many_connections_busy_idle_busy(self):
        seeds = [self.uniq() for _ in range(self.N)]
        conns = [self.conn(timeout=30) for _ in range(self.N)]
        try:
            for round_ in range(3):
                for c, seed in zip(conns, seeds):
                    self.busy(c, seed, round_)
                # All idle now (every stream answered), memory given back
                # 200 ms after; then touched while idle.
                time.sleep(0.4)
                for k, c in enumerate(conns):
                    self.ping(c, b"idle%04d" % k)
                time.sleep(0.4)
                for c in conns:
                    self.assertIsNone(c.goaway)
                    self.assertFalse(c.eof)
        finally:
            for c in conns:
                c.close()
        self.assertStillServes()


class ProtocolChoiceTest(H2Case):
    """A listener with http2: true: the first bytes choose the protocol."""

    def test_http11_on_the_same_port(self):
        seed = self.uniq()
        t = url("/t/body", size=5000, seed=seed, cc="max-age=60")
        with H.RawConn(self.port) as c:
            r = c.request("GET", t)
            self.assertOk(r, expected_body(5000, seed))
            self.assertEqual(r.version, "HTTP/1.1")
            r = c.request("GET", t)     # keep-alive
            self.assertHit(r)
        r = self.get(t)
        self.assertOk(r, expected_body(5000, seed))
        self.assertEqual(r.version, "HTTP/2")
        self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_http11_request_shorter_than_the_preface(self):
        """'GET / HTTP/1.1\\r\\n\\r\\n'-sized requests and a request whose first
        bytes arrive alone still reach HTTP/1.1."""
        with H.RawConn(self.port) as c:
            c.send(b"P")
            time.sleep(0.2)
            c.send(b"UT /t/echo?raw=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
            r = c.read_response()
            self.assertOk(r, b"ok")
            self.assertEqual(r.header("X-Echo-Method"), "PUT")

    def test_preface_split_across_writes(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            for b in (b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"):
                s.sendall(b)
                time.sleep(0.2)
            s.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")     # empty SETTINGS
            s.settimeout(5)
            head = s.recv(9)
            self.assertEqual(len(head), 9, head)
            self.assertEqual(head[3], 0x4, "the server's first frame is not SETTINGS: %r" % head)

    def test_h2c_upgrade_ignored(self):
        """`curl --http2 http://...` asks to upgrade to h2c (RFC 7540 §3.2,
        deprecated by RFC 9113 §3.1).  Not offered, so the request is
        answered over HTTP/1.1 as if the Upgrade were not there (RFC 9110
        §7.8 lets a server ignore it), on a listener with http2: true as
        on any, and the connection goes on."""
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed)
        with H.RawConn(self.port) as c:
            r = c.request("GET", t, [("Connection", "Upgrade, HTTP2-Settings"),
                                     ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAoAAA")])
            self.assertOk(r, expected_body(10, seed))
            self.assertEqual(r.version, "HTTP/1.1")
            self.assertOk(c.request("GET", t), expected_body(10, seed))

    def test_curl_http2_over_cleartext(self):
        """curl --http2 on http:// (the h2c upgrade dance): answered over
        HTTP/1.1."""
        seed = self.uniq()
        t = url("/t/body", size=300, seed=seed)
        p = subprocess.run([CURL, "-sS", "--http2", "-o", os.devnull, "-w",
                            "%{http_version} %{http_code} %{size_download}",
                            "http://127.0.0.1:%d%s" % (self.port, t)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "1.1 200 300")

    def test_curl_prior_knowledge(self):
        seed = self.uniq()
        t = url("/t/body", size=3000, seed=seed, cc="max-age=60")
        for expect_hit in (False, True):
            p = subprocess.run([CURL, "-sS", "--http2-prior-knowledge", "-D", "-", "-o",
                                os.devnull, "-w", "%{http_version} %{http_code} %{size_download}",
                                "http://127.0.0.1:%d%s" % (self.port, t)],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.endswith("\n\n2 200 3000"), p.stdout)
            self.assertEqual("cache-status: freshcache; hit" in p.stdout, expect_hit, p.stdout)

    def test_nghttp_multiplexes_10_streams(self):
        """nghttp -m 10: ten requests on one connection, all answered, all
        waiting on the one origin fetch at the same time."""
        seed = self.uniq()
        t = url("/t/body", size=20000, seed=seed, cc="max-age=60", delay_ms=500)
        before = self.admin_json("GET", "/stats")
        t0 = time.monotonic()
        p = subprocess.run([NGHTTP, "-v", "-n", "-m", "10", "http://127.0.0.1:%d%s" % (self.port, t)],
                           capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr)
        out = p.stdout
        self.assertEqual(out.count("] Connected"), 1, "more than one connection")
        statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", out)
        self.assertEqual(len(statuses), 10, statuses)
        self.assertEqual({s for _, s in statuses}, {"200"})
        self.assertEqual(len({sid for sid, _ in statuses}), 10, statuses)
        ended = re.findall(r"recv DATA frame <length=\d+, flags=0x01, stream_id=(\d+)>", out)
        self.assertEqual(sorted(ended), sorted(sid for sid, _ in statuses), "not every stream ended")
        # the ten HEADERS left before the first response came back
        first_recv = out.index(":status:")
        self.assertEqual(out[:first_recv].count("send HEADERS frame"), 10)
        self.assertLess(elapsed, 3.0, "the streams were not served concurrently")
        self.assertOriginCount(t, 1)
        after = self.admin_json("GET", "/stats")
        self.assertEqual(after["requests"] - before["requests"], 10, (before, after))


class TlsAlpnTest(H2Case):
    """A TLS listener offers h2 by ALPN, before http/1.1; http/1.1 and no
    ALPN at all still get HTTP/1.1."""
    tls = True

    def tls_conn(self, alpn):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return H.tls_client(s, alpn)

    def test_alpn_choices(self):
        for offered, chosen in ((("h2", "http/1.1"), "h2"), (("http/1.1", "h2"), "h2"),
                                (("http/1.1",), "http/1.1"), ((), None)):
            with self.subTest(offered=offered):
                s = self.tls_conn(offered)
                try:
                    self.assertEqual(s.selected_alpn_protocol(), chosen)
                finally:
                    s.close()

    def test_http11_over_tls_still_works(self):
        seed = self.uniq()
        t = url("/t/body", size=2000, seed=seed, cc="max-age=60")
        for alpn in (("http/1.1",), ()):
            s = self.tls_conn(alpn)
            try:
                s.sendall(H.build_request("GET", t, host="localhost"))
                buf = b""
                while b"\r\n\r\n" not in buf or len(buf.partition(b"\r\n\r\n")[2]) < 2000:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
            finally:
                s.close()
            head, _, body = buf.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertEqual(body, expected_body(2000, seed))

    def test_forwarded_proto_https(self):
        r = self.get(url("/t/echo", n=self.uniq()))
        seen = json.loads(r.body)
        self.assertIn(["X-Forwarded-Proto", "https"], seen["headers"], seen)

    def test_curl_http2_over_tls(self):
        seed = self.uniq()
        t = url("/t/body", size=3000, seed=seed, cc="max-age=60")
        for expect_hit in (False, True):
            p = subprocess.run([CURL, "-sS", "--http2", "-k", "-D", "-", "-o", os.devnull, "-w",
                                "%{http_version} %{http_code} %{size_download}",
                                "https://localhost:%d%s" % (self.port, t),
                                "--resolve", "localhost:%d:127.0.0.1" % self.port],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith("HTTP/2 200"), p.stdout)
            self.assertTrue(p.stdout.endswith("\n\n2 200 3000"), p.stdout)
            self.assertEqual("cache-status: freshcache; hit" in p.stdout, expect_hit, p.stdout)

    def test_curl_http11_over_tls(self):
        p = subprocess.run([CURL, "-sS", "--http1.1", "-k", "-o", os.devnull, "-w",
                            "%{http_version} %{http_code}",
                            "https://127.0.0.1:%d/t/body?size=10" % self.port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "1.1 200")

    def test_nghttp_over_tls(self):
        seed = self.uniq()
        t = url("/t/body", size=1000, seed=seed, cc="max-age=60")
        p = subprocess.run([NGHTTP, "-n", "-s", "-m", "10", "https://127.0.0.1:%d%s" % (self.port, t)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr)
        rows = re.findall(r"(?m)^\s*(\d+)\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+(\d+) (\S+)$", p.stdout)
        self.assertEqual(len(rows), 10, p.stdout)
        self.assertEqual({(code, size, path) for _, code, size, path in rows}, {("200", "1000", t)})
        self.assertEqual(len({sid for sid, _, _, _ in rows}), 10, rows)
        self.assertOriginCount(t, 1)


if __name__ == "__main__":
    H.main()
