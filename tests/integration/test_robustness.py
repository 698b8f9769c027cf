#!/usr/bin/env python3
"""Failure handling: origin down / slow / cut off, malformed and oversized
requests, idle clients, clients that leave early, graceful stop."""

import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402


class RobustnessCase(H.ProxyTestCase):
    def assertStillServes(self):
        seed = self.uniq()
        self.assertOk(self.get(url("/t/body", size=100, seed=seed)), expected_body(100, seed))


# Each origin failure gets a daemon of its own, so that one mishandled
# failure cannot make the next test fail too.
# origin.read_timeout is 2s in the default test config.

class OriginSlowTest(RobustnessCase):

    def test_origin_slow_gives_504(self):
        seed = self.uniq()
        t = url("/t/body", size=10, delay_ms=4000, seed=seed)
        t0 = time.monotonic()
        r = self.get(t, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertTrue(r.complete, r)
        self.assertGreater(elapsed, 1.5, "gave up before read_timeout (2s)")
        self.assertLess(elapsed, 3.8, "did not give up at read_timeout (2s)")
        self.assertStillServes()


class OriginStallTest(RobustnessCase):

    def test_origin_stalls_mid_body(self):
        """Headers and part of the body arrive, then nothing for longer than
        read_timeout: the client must not get a response that looks complete."""
        seed = self.uniq()
        t = url("/t/body", size=100000, chunked=1, chunk_size=40000, chunk_delay_ms=4000,
                cc="max-age=60", seed=seed)
        t0 = time.monotonic()
        with self.conn(timeout=10) as c:
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            try:
                r = c.read_response()
            except H.NoResponse:
                r = None
            if r is not None and r.status == 200:
                self.assertFalse(r.complete, "a stalled body was completed: %r" % r)
                self.assertEqual(r.body, expected_body(100000, seed)[:len(r.body)])
            elif r is not None:
                self.assertIn(r.status, (502, 504), r)
        self.assertLess(time.monotonic() - t0, 3.8, "stalled body not cut at read_timeout (2s)")


class OriginCloseTest(RobustnessCase):

    def test_origin_closes_mid_body(self):
        seed = self.uniq()
        t = url("/t/close-mid-body", size=200000, seed=seed)    # Cache-Control: max-age=60
        with self.conn(timeout=5) as c:
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            try:
                r = c.read_response()
            except H.NoResponse:
                r = None                # aborted before the headers: acceptable
            if r is not None and r.status == 200:
                self.assertFalse(r.complete, "truncated origin body passed on as complete: %r" % r)
                self.assertLess(len(r.body), 200000)
                self.assertEqual(r.body, expected_body(200000, seed)[:len(r.body)],
                                 "partial body is not a prefix of the origin's bytes")
                self.assertTrue(c.wait_closed(3), "connection left open after a truncated body")
            elif r is not None:
                self.assertIn(r.status, (502, 504), r)
                self.assertTrue(r.complete, r)
        self.assertOriginCount(t, 1)
        # nothing was stored: the next request goes to the origin again
        with self.conn() as c:
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            try:
                r = c.read_response()
                self.assertFalse(r.status == 200 and r.complete, r)
            except H.NoResponse:
                pass
        self.assertOriginCount(t, 2)
        self.assertStillServes()


class BadRequestTest(RobustnessCase):
    config = {"limits": {"max_header_bytes": "4KiB"}}

    def assertRejected(self, raw, statuses=(400,), must_close=True):
        """`raw` gets one of `statuses`; when the request's framing cannot be
        trusted (`must_close`), the connection is closed after it."""
        with self.conn() as c:
            c.send(raw)
            r = c.read_response()
            self.assertIn(r.status, statuses, r)
            self.assertTrue(r.complete, r)
            if must_close:
                self.assertTrue(c.wait_closed(3), "connection not closed after %d" % r.status)
        self.assertTrue(self.proxy is None or self.proxy.alive())
        self.assertStillServes()

    def test_malformed_header_line(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")

    def test_malformed_request_line(self):
        self.assertRejected(b"GARBAGE\r\n\r\n")

    def test_http11_without_host(self):
        # well-framed: the connection may stay open
        self.assertRejected(b"GET /t/body?size=1 HTTP/1.1\r\n\r\n", must_close=False)
        self.assertEqual(self.origin.count("/t/body?size=1"), 0)

    def test_duplicate_content_length(self):
        self.assertRejected(b"POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            b"Content-Length: 6\r\n\r\nhello!")
        self.assertEqual(self.origin.total(), 1)    # only assertStillServes' request

    def test_header_too_large(self):
        self.assertRejected(H.build_request("GET", "/t/body?size=1", {"X-Big": "a" * 8000},
                                            host="x"), (431, 400))
        seed = self.uniq()
        r = self.get(url("/t/body", size=5, seed=seed), {"X-Medium": "a" * 2000})
        self.assertOk(r, expected_body(5, seed))

    def test_binary_garbage(self):
        with self.conn() as c:
            c.send(bytes(range(256)) * 4)
            try:
                r = c.read_response()
                self.assertEqual(r.status, 400, r)
            except (H.NoResponse, AssertionError):
                pass            # closing without a response is fine too
            self.assertTrue(c.wait_closed(3))
        self.assertStillServes()


class LingeringCloseTest(RobustnessCase):
    """RFC 9112 §9.6: a connection we close while the client may still be
    sending closes in stages — our side first, theirs read and dropped —
    so the kernel sends a FIN after our last response, not a reset that
    can destroy it."""

    def connections(self):
        status, text = self.proxy.admin("GET", "/metrics")
        self.assertEqual(status, 200, text)
        for line in text.splitlines():
            if line.startswith("freshcache_connections "):
                return int(float(line.split()[1]))
        self.fail("no freshcache_connections")

    def wait_connections(self, want, timeout):
        deadline = time.monotonic() + timeout
        while self.connections() != want and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.connections()

    def send_close_and_more(self, seed):
        """A request with Connection: close, then 1 MiB of pipelined
        requests the proxy will not serve (more than the socket buffers
        hold: some are still unread when the answer is out), sent by a
        thread; the socket."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        first = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 % url("/t/body", size=3000, seed=seed)).encode()
        more = b"GET /t/body?size=1 HTTP/1.1\r\nHost: x\r\n\r\n" * 24000
        t = H.send_in_background(s, first + more)
        self.addCleanup(t.join, 10)
        return s

    def read_to_end(self, s):
        """Everything until the proxy's FIN; a reset fails the test."""
        return H.read_until_fin(self, s, "the proxy closed with unread input")

    def test_answer_then_fin_despite_unread_pipeline(self):
        seed = self.uniq()
        s = self.send_close_and_more(seed)
        try:
            got = self.read_to_end(s)
        finally:
            s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head[:100])
        self.assertEqual(body, expected_body(3000, seed))
        # the client closed: the proxy lets go at once
        self.assertEqual(self.wait_connections(0, 3), 0)
        self.assertStillServes()

    def test_complete_request_closes_at_once(self):
        """A request with Connection: close and nothing after it: the
        proxy closes its socket at once, as nginx does (no linger: a
        shutdown, a wait for the client's FIN and two more epoll_ctl per
        connection), while the client keeps its side open."""
        seed = self.uniq()
        t = url("/t/body", size=3000, cc="max-age=60", seed=seed)
        self.assertOk(self.get(t), expected_body(3000, seed))
        for kind in ("hit", "miss"):
            with self.subTest(kind):
                target = t if kind == "hit" else url("/t/body", size=3000, seed=seed + "-m")
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                try:
                    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               % target).encode())
                    got = self.read_to_end(s)
                    self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:100])
                    self.assertEqual(self.wait_connections(0, 1.5), 0,
                                     "the proxy lingered after a complete request")
                finally:
                    s.close()
        self.assertStillServes()

    def test_malformed_request_then_fin(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(b"GARBAGE\r\n\r\n" + b"x" * 60000)
            got = self.read_to_end(s)
        finally:
            s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got[:100])
        self.assertStillServes()

    def test_linger_ends_when_the_client_stays_silent(self):
        s = self.send_close_and_more(self.uniq())
        try:
            got = self.read_to_end(s)       # our side is closed ...
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:100])
            self.assertEqual(self.connections(), 1)     # ... theirs is read on
            t0 = time.monotonic()
            self.assertEqual(self.wait_connections(0, 8), 0)
            self.assertGreater(time.monotonic() - t0, 3.5)  # after 5 s of silence
        finally:
            s.close()
        self.assertStillServes()


class ClientGoneTest(RobustnessCase):

    def test_client_leaves_before_response(self):
        seed = self.uniq()
        t = url("/t/body", size=5000, delay_ms=500, cc="max-age=60", seed=seed)
        c = self.conn()
        c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
        time.sleep(0.1)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()               # RST
        time.sleep(0.6)
        self.assertOk(self.get(t), expected_body(5000, seed))
        self.assertLessEqual(self.origin.count(t), 2)
        self.assertStillServes()

    def test_client_resets_during_cached_body(self):
        # A hit queues the whole body at once: a client that resets with
        # most of it unsent must still have its connection freed.
        seed = self.uniq()
        t = url("/t/body", size=8 * H.MiB, cc="max-age=60", seed=seed)
        self.assertOk(self.get(t), expected_body(8 * H.MiB, seed))
        for _ in range(5):
            c = self.conn()
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            c.sock.recv(65536)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()           # RST with megabytes still queued for it
        deadline = time.monotonic() + 5
        open_now = None
        while time.monotonic() < deadline:
            status, stats = self.proxy.admin("GET", "/stats")
            self.assertEqual(status, 200, stats)
            open_now = stats["connections"]
            if open_now == 0:
                break
            time.sleep(0.1)
        self.assertEqual(open_now, 0, "connections left open after the clients reset")
        self.assertStillServes()

    def test_client_leaves_mid_body(self):
        seed = self.uniq()
        t = url("/t/body", size=20 * H.MiB, cc="no-store", seed=seed)
        with self.conn() as c:
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            got = 0
            while got < 200000:
                d = c.sock.recv(65536)
                if not d:
                    break
                got += len(d)
        time.sleep(0.3)
        self.assertStillServes()


class OriginDownTest(RobustnessCase):
    origin_down = True

    def test_502(self):
        for _ in range(2):
            t0 = time.monotonic()
            r = self.get(url("/t/body", size=10, seed=self.uniq()))
            self.assertEqual(r.status, 502, r)
            self.assertTrue(r.complete, r)
            self.assertLess(len(r.body), 4096, "not a short body")
            self.assertLess(time.monotonic() - t0, 1.5, "a refused connection took long")
            self.assertFalse(r.cache_status.get("hit"), r)

    def test_502_keeps_client_connection_usable(self):
        with self.conn() as c:
            r = c.request("GET", "/t/body?size=1")
            self.assertEqual(r.status, 502)
            if "close" not in r.tokens("Connection"):
                self.assertEqual(c.request("GET", "/t/body?size=2").status, 502)


class OriginConnectTimeoutTest(H.ProxyTestCase):
    """An origin whose accept queue is full: the kernel drops the proxy's
    SYNs and the connect never completes (what a host that vanished
    without a reset looks like, made on loopback with listen(0) and one
    connection nobody accepts).  The request gets a 504 after
    origin.connect_timeout (1s in the test config), and /verify says
    what happened for that URL."""

    @classmethod
    def setUpClass(cls):
        cls.full = socket.socket()
        cls.full.bind(("127.0.0.1", 0))
        cls.full.listen(0)
        cls.origin_port = cls.full.getsockname()[1]
        cls.filler = socket.create_connection(("127.0.0.1", cls.origin_port), timeout=5)
        super().setUpClass()
        cls.addClassCleanup(cls.full.close)
        cls.addClassCleanup(cls.filler.close)

    def test_504_and_verify_names_it(self):
        r = self.get("/x")
        self.assertEqual(r.status, 504, r)
        self.assertIn(b"origin connect timeout", r.body)
        self.assertTrue(r.complete, r)
        status, doc = self.proxy.admin("POST", "/verify", {"urls": ["/x"]})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["results"][0]["error"], "origin connect timeout", doc)
        self.assertTrue(self.proxy.alive())


class DescriptorsExhaustedTest(RobustnessCase):
    """Out of descriptors, accept() fails while the connection waits in
    the backlog and the listening socket stays readable: the listener
    pauses (100 ms) instead of failing again every turn of the loop, and
    serves the waiting clients once descriptors are free."""
    config = {"workers": 1}

    def test_accept_pauses_when_out_of_descriptors(self):
        import resource
        pid = self.proxy.proc.pid
        open_now = len(os.listdir("/proc/%d/fd" % pid))
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        socks = []
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_now + 8, old[1]))
            for _ in range(40):         # far more than the 8 free descriptors
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                socks.append(s)
            time.sleep(1.0)
            with open(self.proxy.log_path, "rb") as f:
                pauses = f.read().count(b"not accepting there for 100 ms")
            # Paused ~10 times a second; spinning, it logged every turn.
            self.assertGreaterEqual(pauses, 1, self.proxy.log_tail())
            self.assertLessEqual(pauses, 25, self.proxy.log_tail())
            # The clients waiting in the backlog are served once there are
            # descriptors again: the last one sends a request and gets it.
            for s in socks[:-1]:
                s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
            last = socks[-1]
            last.sendall(b"GET /t/body?size=7&seed=1 HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            got = H.read_until_fin(self, last, "the response to a client that waited in the backlog")
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:200])
        finally:
            for s in socks:
                s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        self.assertStillServes()


    def test_admin_accept_pauses_and_recovers(self):
        """The admin socket too: accept() failing (out of descriptors) is
        logged, accepting pauses for 1 s instead of spinning, and the
        operator's connection that waited in the backlog is answered once
        there are descriptors again."""
        import resource
        pid = self.proxy.proc.pid
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            open_now = len(os.listdir("/proc/%d/fd" % pid))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_now, old[1]))
            s.connect(self.proxy.config["admin"]["socket"])     # waits in the backlog
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            deadline = time.monotonic() + 5
            while b"admin: accept on" not in self.log_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.5)         # a pause of 1 s between attempts, not one per loop turn
            failures = self.log_bytes().count(b"admin: accept on")
            self.assertGreaterEqual(failures, 1, self.proxy.log_tail())
            self.assertLessEqual(failures, 4, self.proxy.log_tail())
            resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
            got = H.read_until_fin(self, s, "the admin answer to a client that waited")
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:200])
            self.assertIn(b'"connections"', got)
        finally:
            s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        self.assertEqual(self.proxy.admin("GET", "/stats")[0], 200)

    def log_bytes(self):
        with open(self.proxy.log_path, "rb") as f:
            return f.read()


class ClientTimeoutTest(H.ProxyTestCase):
    config = {"limits": {"client_timeout": "1s"}}

    def check_closed(self, c, t0):
        self.assertTrue(c.wait_closed(3.5), "idle connection still open after 3.5s "
                        "(limits.client_timeout: 1s)")
        self.assertGreater(time.monotonic() - t0, 0.5, "closed much earlier than client_timeout")

    def test_idle_connection_closed(self):
        with self.conn() as c:
            self.check_closed(c, time.monotonic())
        self.assertOk(self.get("/t/body?size=3"), b"x 0")

    def test_idle_after_request_closed(self):
        with self.conn() as c:
            self.assertOk(c.request("GET", "/t/body?size=3"), b"x 0")
            self.check_closed(c, time.monotonic())

    def test_partial_request_closed(self):
        with self.conn() as c:
            c.send(b"GET /t/body?size=3 HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            self.check_closed(c, t0)
            if c.buf:
                self.assertRegex(bytes(c.buf), rb"^HTTP/1\.[01] 408 ")
        self.assertEqual(self.origin.total(), 0)


class GracefulStopTest(H.ProxyTestCase):

    def tearDown(self):
        pass    # this test stops the daemon itself

    def test_sigterm_finishes_in_flight_response(self):
        if self.proxy is None:
            self.skipTest("no daemon in direct mode")
        seed = self.uniq()
        t = url("/t/body", size=100000, delay_ms=1000, seed=seed)
        result = {}

        def client():
            try:
                result["r"] = self.get(t, timeout=10)
            except Exception as e:      # reported below
                result["e"] = e
        th = threading.Thread(target=client)
        th.start()
        time.sleep(0.3)
        self.proxy.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with self.assertRaises(OSError, msg="still accepting after SIGTERM"):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        th.join(10)
        self.assertNotIn("e", result, result)
        self.assertOk(result["r"], expected_body(100000, seed))
        try:
            rc = self.proxy.proc.wait(5)
        except Exception:
            self.fail("freshcached still running 5s after SIGTERM")
        self.assertEqual(rc, 0, "exit status after SIGTERM")


class LingerStopTest(H.ProxyTestCase):

    def tearDown(self):
        pass    # this test stops the daemon itself

    def test_sigterm_ends_a_linger(self):
        """A connection closing in stages whose client stays silent does
        not hold a stopping daemon for its 5 s."""
        if self.proxy is None:
            self.skipTest("no daemon in direct mode")
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(b"GARBAGE\r\n\r\n" + b"x" * 60000)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got[:100])
            t0 = time.monotonic()
            self.proxy.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proxy.proc.wait(5)
            except Exception:
                self.fail("freshcached still running 5s after SIGTERM")
            self.assertEqual(rc, 0, "exit status after SIGTERM")
            self.assertLess(time.monotonic() - t0, 2.5, "the stop waited for the linger")
        finally:
            s.close()


if __name__ == "__main__":
    H.main()
