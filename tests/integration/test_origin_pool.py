#!/usr/bin/env python3
"""The origin connection pool (issue 15).

A connection goes back to the worker's pool after a complete exchange with
its read event still armed (no epoll_ctl per request).  So what arrives
between the end of the response and the fetch's deferred release (bytes,
the origin closing) must keep it out of the pool, and a pooled connection
keeps none of the read timeout it had while waiting for a response.
"""

import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402
from test_callbacks import RawOrigin, RawOriginCase  # noqa: E402


class KeepAliveOrigin(RawOrigin):
    """test_callbacks' raw origin, but keep-alive: GET /PATH gets a 200
    whose body names the connection and the request on it ("c<conn>r<req>").
    After the response, /close closes the connection at once (no
    Connection: close), /junk sends stray bytes after it and keeps the
    connection open."""

    def __init__(self):
        self.next_conn = 0
        self.conn_lock = threading.Lock()
        super().__init__(delay=0.0)

    def answer(self, c):
        with self.conn_lock:
            self.next_conn += 1
            n = self.next_conn
        buf = b""
        req = 0

        def receive(enough):
            """Read until enough(buf); False when the proxy closed."""
            nonlocal buf
            while not enough(buf):
                try:
                    d = c.recv(4096)
                except OSError:
                    return False
                if not d:
                    return False
                buf += d
            return True
        with c:
            while True:
                if not receive(lambda b: b"\r\n\r\n" in b):
                    return
                head, buf = buf.split(b"\r\n\r\n", 1)
                need = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        need = int(value)
                if not receive(lambda b: len(b) >= need):
                    return
                buf = buf[need:]
                req += 1
                path = head.split(b" ", 2)[1].decode().split("?")[0]
                body = b"c%dr%d" % (n, req)
                resp = (b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body)) + body
                if path == "/junk":
                    resp += b"HTTP/1.1 200 OK\r\n"     # nobody asked for this
                c.sendall(resp)
                if path == "/close":
                    return


class RawPoolTest(RawOriginCase):
    # One worker: one pool, so which connection a request gets is known.
    config = {"workers": 1}
    raw_origin = KeepAliveOrigin

    def settle(self):
        # the origin's close or stray bytes reach the daemon
        time.sleep(0.3)

    def test_reused_when_nothing_follows(self):
        first = self.get("/plain?a")
        self.assertEqual(first.status, 200, first)
        conn = first.body.split(b"r")[0]
        for i in range(5):
            r = self.get("/plain?%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body.split(b"r")[0], conn, "pooled connection not reused")

    def test_origin_close_after_response_not_reused(self):
        """The origin closes right after a complete keep-alive response:
        whether the EOF comes before or after the fetch's release, the
        next request goes out on a new connection and succeeds."""
        for i in range(10):
            r = self.get("/close?%d" % i)
            self.assertEqual(r.status, 200, r)
            closed = r.body.split(b"r")[0]
            if i % 2:
                self.settle()
            r = self.get("/plain?after%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertNotEqual(r.body.split(b"r")[0], closed,
                                "a request went out on the connection the origin closed")

    def test_upload_on_a_connection_the_origin_just_closed(self):
        """A POST pipelined behind a request whose response the origin
        ends by closing: its fetch may take the pooled connection before
        the close is seen.  The head is written, the body's write fails
        (EPIPE) and no event is left to say so; the client used to wait
        forever (found by the black-box fuzzer).  Now it gets an answer:
        the origin's, or a 502 when the body could not be sent (it cannot
        be sent again: it came from the client as it went)."""
        host = "127.0.0.1:%d" % self.port
        for i in range(5):
            with H.RawConn(self.port, timeout=5) as c:
                c.send(H.build_request("GET", "/close?up%d" % i, host=host) +
                       H.build_request("POST", "/post?up%d" % i, host=host, body=b"x" * 92))
                r1 = c.read_response()
                r2 = c.read_response()
            self.assertEqual(r1.status, 200, r1)
            self.assertIn(r2.status, (200, 502), r2)
        self.assertEqual(self.get("/plain?after-upload").status, 200)

    def test_stray_bytes_after_response_not_reused(self):
        for i in range(5):
            r = self.get("/junk?%d" % i)
            self.assertEqual(r.status, 200, r)
            junk = r.body.split(b"r")[0]
            self.settle()
            r = self.get("/plain?after-junk%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertNotEqual(r.body.split(b"r")[0], junk,
                                "a connection with stray bytes was reused")


class ResetAfterFirstChunkOrigin(RawOrigin):
    """Reads a chunked upload's head and first chunk, says so (got_first),
    then, when told (reset), closes with a reset (zero linger) without
    having answered."""

    def __init__(self):
        self.got_first = threading.Event()
        self.reset = threading.Event()
        self.closed = threading.Event()
        super().__init__(delay=0.0)

    def answer(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.endswith(b"hello\r\n"):
            d = c.recv(4096)
            if not d:
                c.close()
                return
            buf += d
        self.got_first.set()
        self.reset.wait(10)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.closed.set()


class ChunkedUploadResetTest(RawOriginCase):
    """The last chunk of a chunked upload (fetch_end_body's write) to an
    origin that has just reset the connection.  The daemon is stopped
    (SIGSTOP) while the client's last chunk and then the origin's reset
    arrive, so the next loop turn sees the client's bytes first: the
    write of "0\r\n\r\n" fails at once, and a failed write leaves no
    event behind (the reset's read event is disarmed with it).  The
    client must get a 502, not wait forever (fetch_end_body once ignored
    the failure, as fetch_send_body did: RawPoolTest's upload test)."""
    config = {"workers": 1}
    raw_origin = ResetAfterFirstChunkOrigin

    def test_last_chunk_to_an_origin_that_reset(self):
        pid = self.proxy.proc.pid
        with H.RawConn(self.port, timeout=10) as c:
            c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n")
            self.assertTrue(self.raw.got_first.wait(5), "the first chunk never reached the origin")
            time.sleep(0.1)     # the daemon back in epoll_wait
            os.kill(pid, signal.SIGSTOP)
            try:
                c.send(b"0\r\n\r\n")
                time.sleep(0.2)
                self.raw.reset.set()
                self.assertTrue(self.raw.closed.wait(5))
                time.sleep(0.2)
            finally:
                os.kill(pid, signal.SIGCONT)
            r = c.read_response()
        self.assertEqual(r.status, 502, r)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.proxy.admin("GET", "/stats")[0], 200)


class PoolTimeoutTest(H.ProxyTestCase):
    """A pooled connection keeps no read timeout: the 2 s origin
    read_timeout ran while the fetch waited for its response, and once
    the connection is idle it must not close it."""
    config = {"workers": 1, "origin": {"read_timeout": "1s"}}

    def test_idle_longer_than_read_timeout_is_reused(self):
        seed = self.uniq()
        t = url("/t/body", size=100, cc="no-store", seed=seed)
        self.assertOk(self.get(t), expected_body(100, seed))
        before = self.origin.stats()["connections"]["accepted"]
        time.sleep(1.6)     # past the read timeout, the connection idle in the pool
        self.assertOk(self.get(t), expected_body(100, seed))
        after = self.origin.stats()["connections"]["accepted"]
        # (the control endpoints' own connections are not counted)
        self.assertEqual(after - before, 0,
                         "the pooled connection was closed by a read timeout while idle")


class FetchReuseTest(H.ProxyTestCase):
    """Fetches are pooled per worker: one that carried a large request and
    response head (its message buffers given back, not kept) and one that
    revalidated are followed by others that see nothing of them."""
    config = {"workers": 1}

    def test_large_then_small_heads(self):
        for i in range(6):
            seed = self.uniq()
            big = "X-Pad:" + "p" * 6000
            t = url("/t/body", size=200 + i, cc="no-store", seed=seed, hdr=big)
            r = self.get(t, headers={"X-Client-Pad": "q" * 6000})
            self.assertOk(r, expected_body(200 + i, seed))
            self.assertEqual(r.header("X-Pad"), "p" * 6000)
            t2 = url("/t/body", size=10 + i, cc="no-store", seed=seed)
            r = self.get(t2)
            self.assertOk(r, expected_body(10 + i, seed))
            self.assertIsNone(r.header("X-Pad"))
            logged = self.origin.log(t2)
            self.assertIsNone(H.req_header(logged[-1], "X-Client-Pad"))

    def test_revalidation_then_miss(self):
        seed = self.uniq()
        t = url("/t/body", size=300, cc="no-cache", etag=1, seed=seed)
        self.assertOk(self.get(t), expected_body(300, seed))
        for i in range(5):
            r = self.get(t)
            self.assertOk(r, expected_body(300, seed))
            self.assertIn("fwd-status=304", r.header("Cache-Status"))
            other = url("/t/body", size=50 + i, cc="max-age=60", seed=seed)
            r = self.get(other)
            self.assertOk(r, expected_body(50 + i, seed))
            logged = self.origin.log(other)
            self.assertIsNone(H.req_header(logged[-1], "If-None-Match"))


if __name__ == "__main__":
    H.main()
