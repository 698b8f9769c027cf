"""test_strict.py — RFC 9112 framing rules, both sides of the proxy (issue 13).

Requests are written byte for byte on raw sockets: a request whose framing
is broken or ambiguous is refused (400, 501 or 505) and its connection
closed.  Origin responses come from FramingOrigin, which writes exactly the
bytes a path names: a response whose framing is ambiguous is a 502, never
stored (the next request goes to the origin again).
"""

import socket
import threading
import time

import harness as H
from test_callbacks import RawOrigin, RawOriginCase


def exchange(port, raw, timeout=5.0):
    """Send `raw`, read one response; returns (response, closed after it)."""
    with H.RawConn(port, timeout) as c:
        c.send(raw)
        r = c.read_response()
        return r, c.wait_closed(3.0)


class StrictRequestTest(H.ProxyTestCase):
    """Each MUST of RFC 9112 for requests, on the wire."""

    def refused(self, raw, status=400):
        r, closed = exchange(self.port, raw)
        self.assertEqual(r.status, status, "%r -> %r" % (raw, r))
        self.assertTrue(closed, "connection left open after refusing %r" % raw)
        self.assertEqual(self.origin.total(), 0, "a refused request reached the origin")

    def accepted(self, raw):
        r, _ = exchange(self.port, raw)
        self.assertEqual(r.status, 200, "%r -> %r" % (raw, r))
        return r

    def test_two_host_fields(self):      # §3.2
        t = H.url("/t/body", size=3, seed=self.uniq())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\nHost: a b\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\n\r\n" % t).encode())

    def test_obs_fold(self):             # §5.2
        t = H.url("/t/body", size=3, seed=self.uniq())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n" % t).encode())
        # whitespace between the request line and the first field (§2.2)
        self.refused(("GET %s HTTP/1.1\r\n Host: a\r\n\r\n" % t).encode())

    def test_obs_fold_split_across_reads(self):
        t = H.url("/t/body", size=3, seed=self.uniq())
        with H.RawConn(self.port) as c:
            for part in (b"GET " + t.encode() + b" HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n", b" 2\r\n\r\n"):
                c.send(part)
                time.sleep(0.05)
            self.assertEqual(c.read_response().status, 400)

    def test_field_name_characters(self):    # §5.1
        t = H.url("/t/body", size=3, seed=self.uniq())
        self.refused(("GET %s HTTP/1.1\r\nHost : a\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nX-A\t: 1\r\n\r\n" % t).encode())
        self.refused(("GET %s HTTP/1.1\r\nHost: a\r\nX[A]: 1\r\n\r\n" % t).encode())
        self.accepted(("GET %s HTTP/1.1\r\nHost: a\r\nX-A_b.c~!: 1\r\n\r\n" % t).encode())

    def test_content_length_lists(self):     # §6.3: differing and repeated values refused
        t = H.url("/t/body", size=3, seed=self.uniq())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                      "Content-Length: 3\r\n\r\nabc" % t).encode())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                      "Content-Length: 3\r\n\r\nabc" % t).encode())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc" % t).encode())

    def test_transfer_encoding(self):        # §6.1
        t = H.url("/t/body", size=3, seed=self.uniq())
        te_cl = ("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 5\r\n\r\n0\r\n\r\n" % t).encode()
        self.refused(te_cl)
        self.refused(("POST %s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % t).encode())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" % t).encode())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                      "0\r\n\r\n" % t).encode())
        self.refused(("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      "0\r\n\r\n" % t).encode(), 501)

    def test_version(self):                  # §2.3
        t = H.url("/t/body", size=3, seed=self.uniq())
        for v in ("HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"):
            self.refused(("GET %s %s\r\nHost: a\r\n\r\n" % (t, v)).encode(), 505)

    def test_target_forms(self):             # §3.2
        self.refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
        self.refused(b"GET ftp://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.refused(b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.refused(b"GET http://user@a.example/x HTTP/1.1\r\nHost: a\r\n\r\n")
        r, _ = exchange(self.port, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertNotEqual(r.status, 400, r)
        r, closed = exchange(self.port, b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        self.assertEqual(r.status, 501)

    def test_connect_refused_and_closed(self):
        r, closed = exchange(self.port, b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        self.assertEqual(r.status, 501)
        self.assertTrue(closed, "connection left open after CONNECT")
        self.assertEqual(self.origin.total(), 0)

    def assertNoUpgradeForwarded(self, logged):
        for name in ("Upgrade", "HTTP2-Settings"):
            self.assertIsNone(H.req_header(logged, name), "%s forwarded: %r" % (name, logged))
        conn = (H.req_header(logged, "Connection") or "").lower()
        self.assertNotIn("upgrade", conn, logged)

    def test_h2c_upgrade_ignored(self):      # RFC 9110 §7.8, RFC 9113 §3.1
        """`Upgrade: h2c` is not offered, so it is ignored: a plain HTTP/1.1
        200, and the connection goes on (keep-alive)."""
        seed = self.uniq()
        t = H.url("/t/body", size=10, seed=seed)
        with H.RawConn(self.port) as c:
            r = c.request("GET", t, [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                     ("HTTP2-Settings", "AAMAAABkAAQAoAAA")])
            self.assertOk(r, H.expected_body(10, seed))
            self.assertEqual(r.version, "HTTP/1.1")
            self.assertIsNone(r.header("Upgrade"))
            r2 = c.request("GET", H.url("/t/body", size=4, seed=seed))
            self.assertOk(r2, H.expected_body(4, seed))
        self.assertNoUpgradeForwarded(self.origin.log(t)[0])

    def test_websocket_upgrade_gets_the_origins_response(self):
        """A websocket handshake: not tunnelled, the origin gets a plain GET
        (no Upgrade) and its answer goes back as it is."""
        seed = self.uniq()
        t = H.url("/t/echo", n=seed)
        with H.RawConn(self.port) as c:
            r = c.request("GET", t, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                     ("Sec-WebSocket-Version", "13")])
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(r.header("Upgrade"))
            self.assertNoUpgradeForwarded(self.origin.log(t)[0])
            self.assertEqual(c.request("GET", t).status, 200)

    def test_upgrade_with_a_body(self):
        seed = self.uniq()
        t = H.url("/t/body", size=3, seed=seed)
        with H.RawConn(self.port) as c:
            r = c.request("POST", t, [("Connection", "Upgrade"), ("Upgrade", "websocket")],
                          body=b"z" * 5000)
            self.assertOk(r, H.expected_body(3, seed))
            r2 = c.request("POST", t, body=b"next")
            self.assertOk(r2, H.expected_body(3, seed))
        logged = self.origin.log(t)
        self.assertEqual([e["body_length"] for e in logged], [5000, 4])
        self.assertNoUpgradeForwarded(logged[0])

    def test_upgrade_pipelined(self):
        """The next request already sent behind the Upgrade one is read as
        HTTP (it used to be 'data after an upgrade request')."""
        seed = self.uniq()
        a, b = H.url("/t/body", size=5, seed=seed), H.url("/t/body", size=6, seed=seed)
        with H.RawConn(self.port) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    "GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % (a, b)).encode())
            self.assertOk(c.read_response(), H.expected_body(5, seed))
            self.assertOk(c.read_response(), H.expected_body(6, seed))

    def test_absolute_form_authority_wins(self):     # §3.2.2
        t = H.url("/t/body", size=3, seed=self.uniq(), cc="max-age=60")
        raw = ("GET http://target.example%s HTTP/1.1\r\nHost: other.example\r\n\r\n" % t).encode()
        self.accepted(raw)
        logged = self.origin.log()
        self.assertEqual(len(logged), 1)
        self.assertEqual(H.req_header(logged[0], "Host"), "target.example")
        # stored under the authority: an origin-form request for it hits
        r = self.get(t, headers={"Host": "target.example"})
        self.assertHit(r)
        r = self.get(t, headers={"Host": "other.example"})
        self.assertNotHit(r)

    def test_chunk_extensions_and_trailers(self):    # §7.1.1, §7.1.2
        t = H.url("/t/body", size=3, seed=self.uniq())
        body = b"3;ext=1\r\nabc\r\n2;n=\"v w\"\r\nde\r\n0\r\nX-Trailer: 1\r\nHost: evil\r\n\r\n"
        r = self.accepted(("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           % t).encode() + body)
        logged = self.origin.log(t)
        self.assertEqual(logged[0]["body_length"], 5)
        self.assertEqual(H.req_header(logged[0], "Host"), "a")
        self.assertIsNone(H.req_header(logged[0], "X-Trailer"))
        # extensions are bounded (the head may have gone to the origin
        # already: the upload streams; the client still gets its 400)
        big = b"1;x=" + b"v" * 8000 + b"\r\na\r\n0\r\n\r\n"
        r, closed = exchange(self.port, ("POST %s HTTP/1.1\r\nHost: a\r\n"
                                         "Transfer-Encoding: chunked\r\n\r\n" % t).encode() + big)
        self.assertEqual(r.status, 400)
        self.assertTrue(closed)


class FramingOrigin(RawOrigin):
    """test_callbacks' raw origin with these ANSWERS, counting requests per
    path, and closing only once the proxy has read everything."""

    ANSWERS = {
        "/te-cl": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "/cl-differ": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n"
                      b"Content-Length: 4\r\n\r\nabcd",
        "/cl-same": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n"
                    b"Content-Length: 3\r\n\r\nabc",
        "/cl-list": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3, 3\r\n\r\nabc",
        "/bad-chunk": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabcdef\r\n0\r\n\r\n",
        "/te-gzip": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "/te-http10": b"HTTP/1.0 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\n\r\n",
        "/obs-fold": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-A: 1\r\n 2\r\n"
                     b"Content-Length: 3\r\n\r\nabc",
        "/name-space": b"HTTP/1.1 200 OK\r\nCache-Control : max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        # status codes outside 100-599 (RFC 9110 §15), which llhttp accepts
        "/status-000": b"HTTP/1.1 000 X\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/status-20": b"HTTP/1.1 20 X\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/status-099": b"HTTP/1.1 099 X\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/status-600": b"HTTP/1.1 600 X\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/status-999": b"HTTP/1.1 999 X\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "/good-chunked": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3;x=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        "/interim": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 102 Processing\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        # a list: its parts sent PART_GAP seconds apart (the first after a gap too)
        "/interim-slow": [b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                          b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n"
                          b"\r\nabc"],
    }
    PART_GAP = 0.6

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        super().__init__(delay=0.0)

    def answer(self, c):
        with c:
            target = self.read_target(c)
            if target is None:
                return
            path = target.split("?")[0]
            with self.lock:
                self.counts[path] = self.counts.get(path, 0) + 1
            time.sleep(self.delay)
            answer = self.ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            for part in answer if isinstance(answer, list) else [answer]:
                if isinstance(answer, list):
                    time.sleep(self.PART_GAP)
                c.sendall(part)
            try:
                c.shutdown(socket.SHUT_WR)
                c.settimeout(2)
                c.recv(1)
            except OSError:
                pass

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)


class StrictResponseTest(RawOriginCase):
    """An origin response with ambiguous framing is a 502, never stored."""
    raw_origin = FramingOrigin

    def bad_twice(self, path):
        for i in (1, 2):
            r = self.get(path)
            self.assertEqual(r.status, 502, "%s -> %r" % (path, r))
            self.assertEqual(self.raw.count(path), i, "%s: the bad response was stored" % path)

    def test_te_and_cl(self):
        self.bad_twice("/te-cl")

    def test_differing_content_lengths(self):
        self.bad_twice("/cl-differ")

    def test_repeated_content_length(self):
        self.bad_twice("/cl-same")
        self.bad_twice("/cl-list")

    def test_bad_chunked(self):
        for i in (1, 2):
            r = self.get("/bad-chunk")
            # the head may be out before the bad chunk: then the body is cut
            self.assertTrue(r.status == 502 or not r.complete, r)
            self.assertEqual(self.raw.count("/bad-chunk"), i)

    def test_unknown_transfer_coding(self):
        self.bad_twice("/te-gzip")

    def test_te_in_http10(self):
        self.bad_twice("/te-http10")

    def test_obs_fold_and_field_names(self):
        self.bad_twice("/obs-fold")
        self.bad_twice("/name-space")

    def test_101_is_502(self):
        self.bad_twice("/switch")

    def test_invalid_status_code_is_502(self):
        """RFC 9110 §15: a status code is three digits, 100-599; others are
        invalid.  llhttp accepts 0-999 with any number of digits, and the
        proxy used to relay "HTTP/1.1 0 ..." and store it (found by the
        black-box fuzzer)."""
        for path in ("/status-000", "/status-20", "/status-099", "/status-600", "/status-999"):
            self.bad_twice(path)

    def test_interim_responses_forwarded_never_stored(self):
        """RFC 9110 §15.2: the origin's 103 and 102 reach the client that
        caused the fetch, ahead of the final response; the stored response
        replays without them."""
        with H.RawConn(self.port) as c:
            r = c.request("GET", "/interim")
        self.assertOk(r, b"abc")
        self.assertEqual(r.interim, [103, 102])
        r = self.get("/interim")
        self.assertOk(r, b"abc")
        self.assertHit(r)
        self.assertEqual(r.interim, [])
        self.assertEqual(self.raw.count("/interim"), 1)
        # an HTTP/1.0 client never gets a 1xx (RFC 9110 §15.2)
        r = self.get("/interim?v10", version="HTTP/1.0")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.interim, [])

    def test_interim_only_to_the_client_that_caused_the_fetch(self):
        """Two clients ask for the same URL at once: the first causes the
        fetch, the second waits for it (collapsed).  The origin's 103,
        sent while both wait, goes to the first only (the fetch's interim
        callback is the exchange that started it); the second gets the 200
        alone, and so does a later hit (a 1xx is never stored)."""
        path = "/interim-slow"
        with H.RawConn(self.port) as a, H.RawConn(self.port) as b:
            host = "127.0.0.1:%d" % self.port
            a.send(H.build_request("GET", path, host=host))
            deadline = time.monotonic() + 5
            while self.raw.count(path) == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(self.raw.count(path), 1, "the origin never got the request")
            b.send(H.build_request("GET", path, host=host))    # before the 103 (PART_GAP)
            ra, rb = a.read_response(), b.read_response()
        self.assertOk(ra, b"abc")
        self.assertOk(rb, b"abc")
        self.assertEqual(ra.interim, [103], ra)
        self.assertNotIn("collapsed", ra.cache_status, ra.header("Cache-Status"))
        self.assertTrue(rb.cache_status.get("collapsed"), rb.header("Cache-Status"))
        self.assertEqual(rb.interim, [], "a collapsed client got the origin's 1xx: %r" % rb)
        self.assertEqual(self.raw.count(path), 1)
        r = self.get(path)
        self.assertOk(r, b"abc")
        self.assertHit(r)
        self.assertEqual(r.interim, [], "a 1xx replayed from the cache: %r" % r)
        self.assertEqual(self.raw.count(path), 1)

    def test_good_chunked_with_extensions_and_trailer_is_stored(self):
        r = self.get("/good-chunked")
        self.assertOk(r, b"abc")
        self.assertIsNone(r.header("X-Trailer"))
        r = self.get("/good-chunked")
        self.assertOk(r, b"abc")
        self.assertHit(r)
        self.assertEqual(self.raw.count("/good-chunked"), 1)


class SlowClientTest(H.ProxyTestCase):
    """limits.header_timeout and limits.min_body_rate (short here: 1 s,
    1 KiB/s) cut a client that trickles its request; client_timeout (30 s)
    alone never would, each byte restarts it."""

    config = {"limits": {"header_timeout": "1s", "min_body_rate": "1KiB", "client_timeout": "30s"}}

    def trickle(self, c, parts, gap, limit=8.0):
        """Send parts `gap` seconds apart until the proxy closes or `limit`."""
        t0 = time.monotonic()
        for p in parts:
            if time.monotonic() - t0 > limit:
                break
            try:
                c.send(p)
            except OSError:
                return
            time.sleep(gap)

    def test_trickled_head_is_cut_with_408(self):
        t = H.url("/t/body", size=3, seed=self.uniq())
        with H.RawConn(self.port) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: a\r\n" % t).encode())
            self.trickle(c, [b"X-Slow-%d: 1\r\n" % i for i in range(40)], 0.2)
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(5))
        self.assertEqual(self.origin.total(), 0)

    def test_silent_connection_is_cut(self):
        with H.RawConn(self.port) as c:
            self.assertTrue(c.wait_closed(8), "a connection that never sent a byte stayed open")

    def test_head_in_pieces_within_the_limit(self):
        t = H.url("/t/body", size=3, seed=self.uniq())
        with H.RawConn(self.port) as c:
            for part in (b"GET " + t.encode(), b" HTTP/1.1\r\nHost: a\r\n", b"\r\n"):
                c.send(part)
                time.sleep(0.1)
            self.assertEqual(c.read_response().status, 200)

    def test_keep_alive_wait_is_not_head_time(self):
        """Like nginx's client_header_timeout: on a kept-alive connection the
        head's time starts at its first byte, not at the previous response."""
        t = H.url("/t/body", size=3, seed=self.uniq())
        with H.RawConn(self.port) as c:
            self.assertEqual(c.request("GET", t).status, 200)
            time.sleep(1.6)
            self.assertEqual(c.request("GET", t).status, 200)

    def test_slow_body_is_cut_with_408(self):
        t = H.url("/t/body", size=3, seed=self.uniq())
        with H.RawConn(self.port) as c:
            c.send(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" % t).encode())
            self.trickle(c, [b"x" * 10] * 60, 0.2)
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(5))

    def test_body_at_the_rate_passes(self):
        t = H.url("/t/body", size=3, seed=self.uniq())
        body = b"y" * 20000
        with H.RawConn(self.port) as c:
            c.send(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (t, len(body))).encode())
            for i in range(0, len(body), 5000):
                c.send(body[i:i + 5000])
                time.sleep(0.15)
            self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.origin.log(t)[0]["body_length"], len(body))


if __name__ == "__main__":
    H.main()
