#!/usr/bin/env python3
"""Objects freed inside their own callbacks (issue 18).

Each test drives a sequence in which one side of an exchange goes away
while the other side's parser is still running: the client closes while the
origin's pass-through response (head, body and end in one write) is being
parsed, the client resets while a request body is being parsed, the origin
closes while a client's pipelined requests are parsed.  The daemon must
stay up; under ASan (scripts/test --sanitize) any use after free is a
failure of the test that triggered it.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402

LINGER_RST = struct.pack("ii", 1, 0)


class CallbackFreeTest(H.ProxyTestCase):

    def assertStillServes(self):
        seed = self.uniq()
        self.assertOk(self.get(url("/t/body", size=100, seed=seed)), expected_body(100, seed))
        self.assertTrue(self.proxy is None or self.proxy.alive(), "freshcached died")

    def send_and_close(self, target, rst=False, method="GET", body=None):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(H.build_request(method, target, body=body, host="127.0.0.1:%d" % self.port))
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        s.close()

    def test_client_gone_before_pass_body_in_one_read(self):
        """The issue-18 sequence: an uncacheable response whose head, body
        and end arrive in one read; the client closed before it came, so
        the first write of the body fails inside the parser's on_body."""
        for i in range(20):
            seed = self.uniq()
            # no-store: passed through, never stored.  The body is small, so
            # the origin's head, body and end leave in one write.
            t = url("/t/body", size=2000 + i, cc="no-store", delay_ms=100, seed=seed)
            self.send_and_close(t)
        time.sleep(0.5)     # every origin answer has come back
        self.assertStillServes()

    def test_client_gone_before_pass_body_chunked(self):
        for i in range(10):
            seed = self.uniq()
            t = url("/t/body", size=3000 + i, cc="no-store", chunked=1, chunk_size=1000,
                    delay_ms=100, seed=seed)
            self.send_and_close(t)
        time.sleep(0.5)
        self.assertStillServes()

    def test_client_gone_before_stored_body(self):
        # The same with a response that is stored: the fetch goes on alone
        # and the object is complete for the next client.
        seed = self.uniq()
        t = url("/t/body", size=5000, cc="max-age=60", delay_ms=100, seed=seed)
        self.send_and_close(t)
        time.sleep(0.4)
        r = self.get(t)
        self.assertOk(r, expected_body(5000, seed))
        self.assertHit(r)
        self.assertEqual(self.origin.count(t), 1)

    def test_client_resets_during_pass_response(self):
        for i in range(10):
            seed = self.uniq()
            t = url("/t/body", size=200000 + i, cc="no-store", seed=seed)
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            s.recv(1000 * (i + 1))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            s.close()
        time.sleep(0.3)
        self.assertStillServes()

    def test_client_gone_with_pipelined_requests(self):
        # Several requests in one write, then gone: the requests after the
        # first are parsed from a connection that is closing.
        for i in range(10):
            seeds = [self.uniq() for _ in range(3)]
            data = b"".join(H.build_request("GET", url("/t/body", size=1500, cc="no-store",
                                                        delay_ms=50 * (k % 2), seed=sd),
                                            host="127.0.0.1:%d" % self.port)
                            for k, sd in enumerate(seeds))
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(data)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            s.close()
        time.sleep(0.5)
        self.assertStillServes()

    def test_client_gone_during_request_body(self):
        # The request body is parsed in the client's callbacks and streamed
        # to the origin; the client resets in the middle of it.
        for i in range(10):
            t = url("/t/body", size=10, seed=self.uniq())
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 100000\r\n\r\n"
                    % (t, self.port)).encode()
            s.sendall(head + b"x" * (5000 * (i + 1)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            s.close()
        time.sleep(0.3)
        self.assertStillServes()

    def test_origin_error_after_client_gone(self):
        # The origin closes mid-body after the client is gone: the fetch
        # fails with nobody to tell.
        for i in range(5):
            seed = self.uniq()
            self.send_and_close(url("/t/close-mid-body", size=50000, seed=seed), rst=bool(i % 2))
        time.sleep(0.5)
        self.assertStillServes()


class RawOrigin:
    """An origin that writes exactly the bytes a test asks for: the path
    names the answer (see ANSWERS), sent in one write, then the connection
    is closed at once (the end of a close-delimited body arrives with its
    last bytes)."""

    ANSWERS = {
        "/close-delimited/pass": b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"
                                 b"Connection: close\r\n\r\n" + b"p" * 3000,
        "/close-delimited/store": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                                  b"Connection: close\r\n\r\n" + b"s" * 3000,
    }

    def __init__(self, delay=0.1):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    @staticmethod
    def read_target(c):
        """The request target of the head the proxy sends, or None when
        it closed first."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d:
                return None
            buf += d
        return buf.split(b" ", 2)[1].decode()

    def answer(self, c):
        with c:
            target = self.read_target(c)
            if target is None:
                return
            self.requests += 1
            path = target.split("?")[0]
            time.sleep(self.delay)
            c.sendall(self.ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))

    def stop(self):
        self.stopping = True
        self.sock.close()


class RawOriginCase(H.ProxyTestCase):
    """A daemon in front of a raw origin of the class's own: `raw_origin`
    (a RawOrigin class) is started for the class as cls.raw, and stopped
    after it."""
    raw_origin = RawOrigin

    @classmethod
    def setUpClass(cls):
        cls.raw = cls.raw_origin()
        cls.origin_port = cls.raw.port
        super().setUpClass()
        cls.addClassCleanup(cls.raw.stop)


class OriginEofTest(RawOriginCase):
    """The origin's EOF ends a close-delimited body: the fetch parses the
    last bytes from inside its EOF handling, where a client gone meanwhile
    ends the fetch; nothing may touch it after that."""

    def test_close_delimited_pass_to_gone_client(self):
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(H.build_request("GET", "/close-delimited/pass?%d" % i,
                                      host="127.0.0.1:%d" % self.port))
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            s.close()
        time.sleep(0.5)
        r = self.get("/close-delimited/pass?last")
        self.assertOk(r, b"p" * 3000)
        self.assertTrue(self.proxy is None or self.proxy.alive(), "freshcached died")

    def test_close_delimited_store_with_client_gone(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(H.build_request("GET", "/close-delimited/store", host="127.0.0.1:%d" % self.port))
        s.close()
        time.sleep(0.4)
        n = self.raw.requests
        r = self.get("/close-delimited/store")
        self.assertOk(r, b"s" * 3000)
        self.assertHit(r)
        self.assertEqual(self.raw.requests, n, "the close-delimited body was not stored")


if __name__ == "__main__":
    H.main()
