#!/usr/bin/env python3
"""Basic proxying and caching: MISS then HIT, Age, keep-alive, pipelining,
HTTP/1.0, HEAD, hop-by-hop headers, Via / X-Forwarded-*, unsafe methods."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, req_header, url  # noqa: E402

HOP_BY_HOP = ["connection", "keep-alive", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "proxy-connection"]


class BasicTest(H.ProxyTestCase):

    def test_miss_then_hit(self):
        seed = self.uniq()
        t = url("/t/body", size=1000, cc="max-age=60", seed=seed)
        r1 = self.get(t)
        self.assertOk(r1, expected_body(1000, seed))
        cs = r1.cache_status
        self.assertEqual(cs.get("fwd"), "miss", r1)
        self.assertTrue(cs.get("stored"), r1)
        self.assertFalse(cs.get("hit"), r1)
        r2 = self.get(t)
        self.assertOk(r2, expected_body(1000, seed))
        self.assertHit(r2)
        self.assertNotIn("fwd", r2.cache_status, r2)
        self.assertIsNotNone(r2.age, "a hit must carry Age: %r" % r2)
        self.assertGreaterEqual(r2.age, 0)
        self.assertLess(r2.age, 5)
        self.assertEqual(r2.header("X-Origin-Seq"), "1", "hit must be the stored response")
        self.assertEqual(r2.header("Cache-Control"), "max-age=60")
        self.assertOriginCount(t, 1)

    def test_age_grows_while_stored(self):
        seed = self.uniq()
        t = url("/t/body", size=10, cc="max-age=60", seed=seed)
        self.get(t)
        time.sleep(1.2)
        r = self.get(t)
        self.assertHit(r)
        self.assertIsNotNone(r.age, r)
        self.assertGreaterEqual(r.age, 1, r)
        self.assertLessEqual(r.age, 4, r)
        self.assertOriginCount(t, 1)

    def test_query_is_part_of_the_key(self):
        a, b = self.uniq(), self.uniq()
        ta = url("/t/body", size=100, cc="max-age=60", seed=a)
        tb = url("/t/body", size=100, cc="max-age=60", seed=b)
        self.assertOk(self.get(ta), expected_body(100, a))
        rb = self.get(tb)
        self.assertOk(rb, expected_body(100, b))
        self.assertNotHit(rb)
        self.assertOk(self.get(ta), expected_body(100, a))
        self.assertOriginCount(ta, 1)
        self.assertOriginCount(tb, 1)

    def test_keep_alive(self):
        seeds = [self.uniq() for _ in range(3)]
        plan = [(seeds[0], 500), (seeds[1], 20000), (seeds[0], 500), (seeds[2], 0), (seeds[1], 20000)]
        with self.conn() as c:
            for seed, size in plan:
                r = c.request("GET", url("/t/body", size=size, cc="max-age=60", seed=seed))
                self.assertOk(r, expected_body(size, seed))
                self.assertNotIn("close", r.tokens("Connection"), r)
            self.assertFalse(c.eof, "connection closed during keep-alive")
        self.assertEqual(self.origin.total(), 3)

    def test_pipelining(self):
        s = [self.uniq() for _ in range(3)]
        plan = [("GET", s[0], 1000), ("GET", s[1], 70000), ("HEAD", s[0], 1000),
                ("GET", s[2], 1), ("GET", s[0], 1000)]
        raw = b"".join(H.build_request(m, url("/t/body", size=n, cc="max-age=60", seed=seed),
                                       host="127.0.0.1:%d" % self.port)
                       for m, seed, n in plan)
        with self.conn() as c:
            c.send(raw)         # all five in one write
            for i, (m, seed, n) in enumerate(plan):
                r = c.read_response(m)
                self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
                self.assertTrue(r.complete, "response %d: %r" % (i, r))
                if m == "HEAD":
                    self.assertEqual(r.body, b"")
                else:
                    self.assertBody(r, expected_body(n, seed), "response %d" % i)
            self.assertFalse(c.wait_closed(0.3), "connection closed after the pipeline")
            self.assertEqual(bytes(c.buf), b"", "extra bytes after the last response")

    def test_http10_closes(self):
        seed = self.uniq()
        # a chunked origin response must be re-framed for an HTTP/1.0 client
        t = url("/t/body", size=5000, chunked=1, cc="max-age=60", seed=seed)
        with self.conn() as c:
            c.send(H.build_request("GET", t, version="HTTP/1.0", host="127.0.0.1:%d" % self.port))
            r = c.read_response()
            self.assertOk(r, expected_body(5000, seed))
            self.assertIn(r.version, ("HTTP/1.0", "HTTP/1.1"))
            self.assertNotEqual(r.framing, "chunked", "chunked sent to an HTTP/1.0 client")
            self.assertTrue(c.wait_closed(3), "HTTP/1.0 connection without keep-alive stays open")

    def test_http10_keep_alive(self):
        seed = self.uniq()
        t = url("/t/body", size=300, cc="max-age=60", seed=seed)
        with self.conn() as c:
            for _ in range(2):
                c.send(H.build_request("GET", t, {"Connection": "keep-alive"}, version="HTTP/1.0",
                                       host="127.0.0.1:%d" % self.port))
                r = c.read_response()
                self.assertOk(r, expected_body(300, seed))
                self.assertEqual(r.framing, "length", r)
                self.assertIn("keep-alive", r.tokens("Connection"), r)
        self.assertOriginCount(t, 1)

    def test_http10_without_host(self):
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed)
        with self.conn() as c:
            c.send(("GET %s HTTP/1.0\r\n\r\n" % t).encode())
            r = c.read_response()
            self.assertOk(r, expected_body(10, seed))

    def test_head_from_cached_get(self):
        seed = self.uniq()
        t = url("/t/body", size=4321, cc="max-age=60", seed=seed, ct="text/plain")
        with self.conn() as c:
            self.assertOk(c.request("GET", t), expected_body(4321, seed))
            h = c.request("HEAD", t)
            self.assertEqual(h.status, 200, h)
            self.assertHit(h)
            self.assertEqual(h.header("Content-Length"), "4321", h)
            self.assertEqual(h.header("Content-Type"), "text/plain")
            self.assertEqual(h.body, b"")
            # had the HEAD response carried a body, this would not parse
            self.assertOk(c.request("GET", t), expected_body(4321, seed))
        self.assertOriginCount(t, 1)

    def test_head_on_cold_key(self):
        seed = self.uniq()
        t = url("/t/body", size=777, cc="max-age=60", seed=seed)
        with self.conn() as c:
            h = c.request("HEAD", t)
            self.assertEqual(h.status, 200)
            self.assertEqual(h.body, b"")
            self.assertOk(c.request("GET", t), expected_body(777, seed))

    def test_via_and_forwarded_headers(self):
        t = url("/t/echo", n=self.uniq())
        r = self.get(t, {"Host": "www.example.test"})
        self.assertEqual(r.status, 200, r)
        seen = json.loads(r.body)
        h = {k.lower(): v for k, v in seen["headers"]}
        self.assertIn("1.1 freshcache", h.get("via", ""), seen)
        self.assertEqual(h.get("x-forwarded-for"), "127.0.0.1", seen)
        self.assertEqual(h.get("x-forwarded-proto"), "http", seen)
        self.assertEqual(h.get("host"), "www.example.test", "Host not preserved: %r" % seen)
        self.assertIn("1.1 freshcache", r.header("Via") or "", r)

    def test_x_forwarded_for_from_untrusted_client_replaced(self):
        # no trusted_proxies: a client's X-Forwarded-For is not believed
        # (test_poisoning.py has the trusted chain); Via hops are kept
        t = url("/t/echo", n=self.uniq())
        r = self.get(t, {"X-Forwarded-For": "203.0.113.7", "Via": "1.0 upstream"})
        seen = json.loads(r.body)
        xff = [v for k, v in seen["headers"] if k.lower() == "x-forwarded-for"]
        hops = [x.strip() for v in xff for x in v.split(",")]
        self.assertEqual(hops, ["127.0.0.1"], seen)
        via = ", ".join(v for k, v in seen["headers"] if k.lower() == "via")
        self.assertIn("1.0 upstream", via)
        self.assertIn("1.1 freshcache", via)

    def test_hop_by_hop_request_headers_removed(self):
        t = url("/t/echo", n=self.uniq())
        r = self.get(t, [
            ("Connection", "keep-alive, X-Hop-Req"),
            ("X-Hop-Req", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-End-To-End", "kept"),
        ])
        self.assertEqual(r.status, 200, r)
        seen = json.loads(r.body)
        names = {k.lower() for k, _ in seen["headers"]}
        for name in ["x-hop-req", "keep-alive", "te", "trailer", "upgrade",
                     "proxy-authorization", "proxy-connection"]:
            self.assertNotIn(name, names, "%s forwarded to the origin: %r" % (name, seen["headers"]))
        conn = ",".join(v for k, v in seen["headers"] if k.lower() == "connection").lower()
        self.assertNotIn("x-hop-req", conn)
        self.assertIn(["X-End-To-End", "kept"], [[k, v] for k, v in seen["headers"]])

    def test_hop_by_hop_response_headers_removed(self):
        seed = self.uniq()
        t = url("/t/body", size=100, cc="max-age=60", seed=seed, hdr=[
            "Connection: X-Hop-Resp", "X-Hop-Resp: secret", "Keep-Alive: timeout=5, max=100",
            "Upgrade: h2c", "Proxy-Authenticate: Basic realm=x", "Proxy-Foo: 1",
            "Trailer: X-Checksum", "TE: trailers", "X-End-To-End: kept"])
        for i, r in enumerate((self.get(t), self.get(t))):        # forwarded, then stored
            self.assertOk(r, expected_body(100, seed))
            for name in ["x-hop-resp", "keep-alive", "upgrade", "proxy-authenticate",
                         "proxy-foo", "trailer", "te"]:
                self.assertFalse(r.has(name), "response %d carries %s: %r" % (i, name, r))
            self.assertNotIn("x-hop-resp", r.tokens("Connection"))
            self.assertEqual(r.header("X-End-To-End"), "kept")
        self.assertOriginCount(t, 1)

    def test_transfer_encoding_not_duplicated(self):
        seed = self.uniq()
        t = url("/t/body", size=30000, chunked=1, cc="max-age=60", seed=seed)
        for r in (self.get(t), self.get(t)):
            self.assertOk(r, expected_body(30000, seed))
            self.assertLessEqual(len(r.headers_named("Transfer-Encoding")), 1, r)
            self.assertFalse(r.has("Transfer-Encoding") and r.has("Content-Length"),
                             "both Transfer-Encoding and Content-Length: %r" % r)

    def test_post_invalidates_cached_get(self):
        key = self.uniq()
        t = url("/t/mutable", key=key, cc="max-age=60")
        self.assertOk(self.get(t), b"1\n")
        r = self.get(t)
        self.assertOk(r, b"1\n")
        self.assertHit(r)
        p = self.get(t, {"Content-Type": "text/plain"}, method="POST", body=b"2")
        self.assertOk(p, b"ok\n")
        self.assertEqual(self.origin.count_method("POST", t), 1, "POST not forwarded")
        r = self.get(t)
        self.assertOk(r, b"2\n")
        self.assertNotHit(r)
        self.assertEqual(self.origin.count_method("GET", t), 2)

    def test_post_is_not_cached(self):
        t = url("/t/echo", raw=1, cc="max-age=60", n=self.uniq())
        for body in (b"first", b"second"):
            r = self.get(t, method="POST", body=body)
            self.assertOk(r, body)
        self.assertEqual(self.origin.count_method("POST", t), 2)

    def test_status_and_headers_passed_through(self):
        seed = self.uniq()
        t = url("/t/body", size=20, status=203, seed=seed, hdr=["X-Custom: a b c", "Link: </x>; rel=preload"])
        r = self.get(t)
        self.assertEqual(r.status, 203, r)
        self.assertBody(r, expected_body(20, seed))
        self.assertEqual(r.header("X-Custom"), "a b c")
        self.assertEqual(r.header("Link"), "</x>; rel=preload")
        r = self.get(url("/t/body", status=404, seed=self.uniq(), size=9))
        self.assertEqual(r.status, 404)
        self.assertEqual(len(r.body), 9)


class IdleConnectionPoolTest(H.ProxyTestCase):
    """HTTP/1.1 only (raw half-sent heads): not inherited by the HTTP/2
    runs of BasicTest in test_h2.py."""

    def test_many_idle_connections_then_busy_again(self):
        # An idle keep-alive connection gives its parser, buffers and
        # exchange back to its worker's pool (at most 256 kept, the extras
        # freed later from the loop).  600 connections are made busy at
        # once (half a request head each), then all answered, so more than
        # 256 go idle together; a second round takes fresh ones.
        seed = self.uniq()
        conns = [self.conn() for _ in range(600)]   # two workers: ~300 each
        try:
            for rnd in range(2):
                heads = []
                for i, c in enumerate(conns):
                    s = "%s-%d-%d" % (seed, rnd, i % 40)
                    heads.append((s, ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                      % url("/t/body", size=100, cc="max-age=60",
                                            seed=s)).encode()))
                    c.send(heads[-1][1][:10])
                for c, (s, head) in zip(conns, heads):
                    c.send(head[10:])
                for c, (s, head) in zip(conns, heads):
                    self.assertOk(c.read_response(), expected_body(100, s))
        finally:
            for c in conns:
                c.close()


class StaticSiteTest(H.ProxyTestCase):
    """examples/site behind the proxy (test-origin --root), as in scripts/run."""
    origin_root = os.path.join(H.REPO, "examples", "site")

    def file(self, name):
        with open(os.path.join(self.origin_root, name), "rb") as f:
            return f.read()

    def test_hashed_asset_cached(self):
        t = "/assets/app.3f9a2c1d.js"
        self.assertOk(self.get(t), self.file("assets/app.3f9a2c1d.js"))
        r = self.get(t)
        self.assertOk(r, self.file("assets/app.3f9a2c1d.js"))
        self.assertHit(r)
        self.assertTrue(r.header("Content-Type").startswith("text/javascript"), r)
        self.assertOriginCount(t, 1)

    def test_html_no_cache_revalidated(self):
        for _ in range(3):
            r = self.get("/")
            self.assertOk(r, self.file("index.html"))
            self.assertFalse(r.cache_status.get("hit"), r)
        self.assertOriginCount("/", 3)
        for sent in self.origin.log("/")[1:]:
            self.assertIsNotNone(req_header(sent, "If-None-Match") or
                                 req_header(sent, "If-Modified-Since"),
                                 "no-cache HTML not revalidated conditionally: %r" % sent)

    def test_missing_file(self):
        r = self.get("/missing.html")
        self.assertEqual(r.status, 404, r)


class ClientAddressTest(H.ProxyTestCase):
    """HTTP/1.1's own (not run over HTTP/2 by test_h2.py): the pooled
    per-request state carries the client's address as text."""

    def test_client_address_per_connection(self):
        # An idle connection keeps its peer's address binary; each request
        # gets it as text in the per-request state a worker pools, which
        # the previous request may have used for another client: every
        # request must still carry its own connection's address.
        sources = ["127.0.0.%d" % i for i in range(2, 7)]
        conns = [H.RawConn(self.port, source=src) for src in sources]
        try:
            for rnd in range(3):
                for src, c in zip(sources, conns):
                    r = c.request("GET", url("/t/echo", n="%s-%s-%d" % (self.uniq(), src, rnd)))
                    self.assertEqual(r.status, 200, r)
                    seen = json.loads(r.body)
                    xff = [v for k, v in seen["headers"] if k.lower() == "x-forwarded-for"]
                    self.assertEqual(xff, [src], seen)
        finally:
            for c in conns:
                c.close()


if __name__ == "__main__":
    H.main()
