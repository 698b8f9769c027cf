#!/usr/bin/env python3
"""Bodies byte for byte: empty to 20 MiB, Content-Length and chunked, the
max_object_size limit, streaming, and request bodies sent to the origin."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402


class BodiesTest(H.ProxyTestCase):
    config = {"cache": {"memory": "64MiB", "max_object_size": "16MiB"}}

    def check_cached(self, size, chunked):
        seed = self.uniq()
        t = url("/t/body", size=size, chunked=int(chunked), cc="max-age=60", seed=seed)
        body = expected_body(size, seed)
        r1 = self.get(t, timeout=30)
        self.assertOk(r1, body)
        self.assertEqual(r1.cache_status.get("fwd"), "miss", r1)
        if size == 0 and r1.framing == "length":
            self.assertEqual(r1.header("Content-Length"), "0")
        r2 = self.get(t, timeout=30)
        self.assertOk(r2, body)
        self.assertHit(r2)
        if r2.framing == "length":
            self.assertEqual(int(r2.header("Content-Length")), size)
        self.assertOriginCount(t, 1)

    def test_empty(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                self.check_cached(0, chunked)

    def test_one_byte(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                self.check_cached(1, chunked)

    def test_one_mebibyte(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                self.check_cached(H.MiB, chunked)

    def test_odd_sizes(self):
        for size in (63, 4095, 65537, 3 * H.MiB + 1):
            with self.subTest(size=size):
                self.check_cached(size, size % 2 == 1)

    def test_over_max_object_size_not_stored(self):
        size = 20 * H.MiB
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                seed = self.uniq()
                t = url("/t/body", size=size, chunked=int(chunked), cc="max-age=60", seed=seed)
                body = expected_body(size, seed)
                for i in range(2):
                    r = self.get(t, timeout=60)
                    self.assertOk(r, body)
                    self.assertNotHit(r)
                    if not chunked:     # the size was known before the headers were sent
                        self.assertFalse(r.cache_status.get("stored"), "response %d: %r" % (i, r))
                self.assertOriginCount(t, 2)

    def test_large_body_streamed_not_buffered(self):
        """The first bytes reach the client before the origin has finished."""
        seed = self.uniq()
        size = 256 * 1024
        t = url("/t/body", size=size, chunk_size=65536, chunk_delay_ms=400, cc="no-store",
                seed=seed)
        with self.conn(timeout=10) as c:
            t0 = time.monotonic()
            c.send(H.build_request("GET", t, host="127.0.0.1:%d" % self.port))
            while not c.buf:
                if not c._fill():
                    break
            first = time.monotonic() - t0
            r = c.read_response()
            self.assertOk(r, expected_body(size, seed))
        self.assertLess(first, 0.8, "nothing for %.2fs: the response was buffered, not streamed"
                        % first)

    def test_head_of_large_cached_body(self):
        seed = self.uniq()
        t = url("/t/body", size=5 * H.MiB, chunked=1, cc="max-age=60", seed=seed)
        self.assertOk(self.get(t, timeout=30), expected_body(5 * H.MiB, seed))
        with self.conn() as c:
            h = c.request("HEAD", t)
            self.assertEqual(h.status, 200)
            self.assertEqual(h.body, b"")
            if h.has("Content-Length"):
                self.assertEqual(h.header("Content-Length"), str(5 * H.MiB))
            self.assertOk(c.request("GET", url("/t/body", size=7, seed=seed)),
                          expected_body(7, seed))
        self.assertOriginCount(t, 1)


class RequestBodyTest(H.ProxyTestCase):

    def test_post_2mib_echoed(self):
        data = random.Random(7).randbytes(2 * H.MiB)
        t = url("/t/echo", raw=1, n=self.uniq())
        r = self.get(t, {"Content-Type": "application/octet-stream"}, method="POST", body=data,
                     timeout=30)
        self.assertOk(r, data)
        self.assertEqual(r.header("X-Echo-Method"), "POST")
        self.assertEqual(r.header("X-Echo-Body-Length"), str(len(data)))
        self.assertEqual(self.origin.count_method("POST", t), 1)

    def test_post_chunked_request_body(self):
        t = url("/t/echo", raw=1, n=self.uniq())
        parts = [b"hello ", b"chunked " * 1000, b"world"]
        raw = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        with self.conn() as c:
            r = c.request("POST", t, {"Transfer-Encoding": "chunked"}, raw)
            self.assertOk(r, b"".join(parts))
            # and the connection is still in sync
            self.assertOk(c.request("GET", "/t/body?size=3"), b"x 0")

    def test_put_and_empty_post(self):
        t = url("/t/echo", raw=1, n=self.uniq())
        self.assertOk(self.get(t, method="PUT", body=b"abc"), b"abc")
        r = self.get(t, method="POST", body=b"")
        self.assertOk(r, b"")
        self.assertEqual(r.header("X-Echo-Method"), "POST")

    def test_post_body_sent_slowly(self):
        """A request body trickling in is forwarded whole."""
        t = url("/t/echo", raw=1, n=self.uniq())
        data = bytes(range(256)) * 400
        with self.conn() as c:
            c.send(H.build_request("POST", t, {"Content-Length": str(len(data))},
                                   host="127.0.0.1:%d" % self.port))
            for i in range(0, len(data), 25600):
                c.send(data[i:i + 25600])
                time.sleep(0.05)
            self.assertOk(c.read_response(), data)

    def test_pipelined_posts(self):
        t = url("/t/echo", raw=1, n=self.uniq())
        bodies = [b"a" * 10, b"", b"b" * 70000, b"c"]
        with self.conn() as c:
            c.send(b"".join(H.build_request("POST", t, body=b, host="x") for b in bodies))
            for b in bodies:
                self.assertOk(c.read_response("POST"), b)


if __name__ == "__main__":
    H.main()
