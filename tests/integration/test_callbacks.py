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


if __name__ == "__main__":
    H.main()
