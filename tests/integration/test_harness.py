#!/usr/bin/env python3
"""The test tools themselves: test-origin's endpoints and harness.py's client,
body generator and parsers, with no freshcached involved.  If these fail, the
other integration tests' verdicts mean nothing."""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402

SITE = os.path.join(H.REPO, "examples", "site")


class OriginTest(unittest.TestCase):
    """The scripted endpoints, through the harness's raw client."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fc-harness-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.origin = H.Origin(cls.tmp)
        cls.addClassCleanup(cls.origin.stop)
        cls.port = cls.origin.port

    def setUp(self):
        self.origin.reset()

    def get(self, target, headers=None, method="GET", body=None, version="HTTP/1.1"):
        return H.request(self.port, method, target, headers, body, version)

    def test_body_bytes_and_framing(self):
        for size in (0, 1, 63, 64, 65, 1000, H.MiB + 7):
            for chunked in (0, 1):
                with self.subTest(size=size, chunked=chunked):
                    t = url("/t/body", size=size, seed="s%d" % size, chunked=chunked)
                    r = self.get(t)
                    self.assertEqual(r.status, 200)
                    self.assertTrue(r.complete)
                    self.assertEqual(r.framing, "chunked" if chunked else "length")
                    self.assertEqual(r.body, expected_body(size, "s%d" % size))
        self.assertEqual(expected_body(70, "ab")[:20], b"ab 000000000000 aaaa")
        self.assertEqual(expected_body(70, "ab")[64:70], b"ab 000")

    def test_counts_are_exact_and_reset(self):
        t = url("/t/body", size=5, seed="c")
        for _ in range(3):
            self.get(t)
        self.get(t, method="HEAD")
        st = self.origin.stats()
        self.assertEqual(st["requests"][t], 4)
        self.assertEqual(st["methods"]["GET " + t], 3)
        self.assertEqual(st["methods"]["HEAD " + t], 1)
        self.assertEqual(st["total"], 4)
        self.assertEqual(len(self.origin.log(t)), 4)
        self.origin.reset()
        self.assertEqual(self.origin.count(t), 0)
        self.assertEqual(self.origin.total(), 0)

    def test_seq_header_and_custom_headers(self):
        t = url("/t/body", size=3, cc="max-age=60", ct="text/plain", vary="Accept",
                hdr=["X-A: 1", "Connection: X-Hop", "X-Hop: y"])
        r1, r2 = self.get(t), self.get(t)
        self.assertEqual((r1.header("X-Origin-Seq"), r2.header("X-Origin-Seq")), ("1", "2"))
        self.assertEqual(r1.header("Cache-Control"), "max-age=60")
        self.assertEqual(r1.header("Content-Type"), "text/plain")
        self.assertEqual(r1.header("Vary"), "Accept")
        self.assertEqual(r1.header("X-A"), "1")
        self.assertEqual(r1.header("X-Hop"), "y")

    def test_etag_and_conditionals(self):
        body = expected_body(500, "e")
        etag = H.origin_etag(body)
        t = url("/t/body", size=500, seed="e", etag=1, cc="max-age=1",
                hdr304="Cache-Control:max-age=60")
        r = self.get(t)
        self.assertEqual(r.header("ETag"), etag)
        r = self.get(t, {"If-None-Match": '"zz", W/' + etag})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("Cache-Control"), "max-age=60")
        self.assertEqual(r.header("ETag"), etag)
        self.assertEqual(self.get(t, {"If-None-Match": '"zz"'}).status, 200)
        self.assertEqual(self.get(t, {"If-Match": '"zz"'}).status, 412)
        self.assertEqual(self.get(t, {"If-Match": etag}).status, 200)
        t2 = url("/t/body", size=5, lm=1700000000)
        r = self.get(t2)
        self.assertEqual(r.header("Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT")
        self.assertEqual(self.get(t2, {"If-Modified-Since": r.header("Last-Modified")}).status, 304)
        self.assertEqual(self.get(t2, {"If-Modified-Since": "Tue, 14 Nov 2023 22:13:19 GMT"}).status, 200)

    def test_delay(self):
        t0 = time.monotonic()
        r = self.get(url("/t/body", size=10, delay_ms=300))
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_close_mid_body_truncates(self):
        t = url("/t/close-mid-body", size=100000, seed="m")
        with H.RawConn(self.port) as c:
            r = c.request("GET", t)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "100000")
            self.assertFalse(r.complete)
            self.assertEqual(r.body, expected_body(100000, "m")[:50000])
            self.assertTrue(c.wait_closed(2))

    def test_paced_stream(self):
        t = url("/t/body", size=40000, chunk_size=10000, chunk_delay_ms=100, chunked=1)
        t0 = time.monotonic()
        r = self.get(t)
        self.assertEqual(r.body, expected_body(40000))
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_vary_endpoint(self):
        r = self.get("/t/vary", {"Accept-Language": "fr"})
        self.assertEqual(r.body, b"variant Accept-Language=fr\n")
        self.assertEqual(r.header("Vary"), "Accept-Language")
        r = self.get("/t/vary?vary=*")
        self.assertEqual(r.header("Vary"), "*")
        self.assertEqual(r.body, b"variant Accept-Language=\n")

    def test_echo(self):
        import json
        r = self.get("/t/echo?x=1", [("X-Test", "a"), ("X-Test", "b")], method="POST", body=b"hi\x00")
        j = json.loads(r.body)
        self.assertEqual(j["method"], "POST")
        self.assertEqual(j["uri"], "/t/echo?x=1")
        self.assertIn(["X-Test", "a"], j["headers"])
        self.assertIn(["X-Test", "b"], j["headers"])
        self.assertEqual(j["body"], "hi\x00")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        big = os.urandom(3 * 100000)
        r = self.get("/t/echo?raw=1", method="PUT", body=big)
        self.assertEqual(r.body, big)
        self.assertEqual(r.header("X-Echo-Method"), "PUT")
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        with H.RawConn(self.port) as c:
            r = c.request("POST", "/t/echo?raw=1", {"Transfer-Encoding": "chunked"}, chunked)
        self.assertEqual(r.body, b"hello world")

    def test_mutable(self):
        t = url("/t/mutable", key="k", etag=1)
        r1 = self.get(t)
        self.assertEqual(r1.body, b"1\n")
        self.origin.set("k", "two")
        r2 = self.get(t)
        self.assertEqual(r2.body, b"two\n")
        self.assertNotEqual(r1.header("ETag"), r2.header("ETag"))
        self.assertEqual(self.get(t, method="POST", body=b"3").body, b"ok\n")
        self.assertEqual(self.get(t).body, b"3\n")
        bad = url("/t/mutable", key="k", etag="bad")
        self.assertEqual(self.get(bad, {"If-None-Match": '"k-static"'}).status, 304)
        self.origin.set("k", status=503)
        self.assertEqual(self.get(t).status, 503)
        self.origin.reset()
        self.assertEqual(self.get(t).body, b"1\n")

    def test_raw_client_pipelining_and_http10(self):
        reqs = b"".join(H.build_request("GET", url("/t/body", size=n, seed=str(n)),
                                        host="o") for n in (3, 70000, 0, 5))
        with H.RawConn(self.port) as c:
            c.send(reqs)
            for n in (3, 70000, 0, 5):
                self.assertEqual(c.read_response().body, expected_body(n, str(n)))
        # HEAD: the GET's Content-Length, no body, whatever the endpoint
        with H.RawConn(self.port) as c:
            for t in (url("/t/body", size=1000, seed="h"), url("/t/body", size=10, etag=1),
                      "/t/vary", "/t/echo?raw=1", url("/t/mutable", key="h"),
                      url("/t/body", size=30000, chunk_delay_ms=10, chunk_size=10000)):
                h = c.request("HEAD", t)
                self.assertEqual(h.status, 200, t)
                self.assertEqual(h.body, b"", t)
                g = c.request("GET", t)
                self.assertEqual(h.header("Content-Length"), str(len(g.body)), t)
            h = c.request("HEAD", url("/t/body", size=10, chunked=1))
            self.assertEqual(h.body, b"")
            self.assertEqual(c.request("GET", url("/t/body", size=3)).body, b"x 0")
        with H.RawConn(self.port) as c:
            r = c.request("GET", url("/t/body", size=10), version="HTTP/1.0")
            self.assertEqual(r.body, expected_body(10))
            self.assertTrue(c.wait_closed(2))

    def test_connections_counted(self):
        before = self.origin.stats()["connections"]["accepted"]
        with H.RawConn(self.port) as c:
            c.request("GET", "/t/body")
            c.request("GET", "/t/body")
        self.assertEqual(self.origin.stats()["connections"]["accepted"], before + 1)


class StaticRootTest(unittest.TestCase):
    """--root: nginx-like metadata ETags and 304s (deliberately unsafe)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fc-harness-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.root = os.path.join(cls.tmp, "site")
        shutil.copytree(SITE, cls.root)
        cls.origin = H.Origin(cls.tmp, root=cls.root)
        cls.addClassCleanup(cls.origin.stop)
        cls.port = cls.origin.port

    def get(self, target, headers=None, method="GET"):
        return H.request(self.port, method, target, headers)

    def test_files_and_headers(self):
        r = self.get("/")
        self.assertEqual(r.status, 200)
        with open(os.path.join(self.root, "index.html"), "rb") as f:
            self.assertEqual(r.body, f.read())
        st = os.stat(os.path.join(self.root, "index.html"))
        self.assertEqual(r.header("ETag"), '"%x-%x"' % (int(st.st_mtime), st.st_size))
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        r = self.get("/assets/app.3f9a2c1d.js")
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assertTrue(r.header("Content-Type").startswith("text/javascript"))
        r = self.get("/logo.svg")
        self.assertEqual(r.header("Content-Type"), "image/svg+xml")
        self.assertEqual(r.header("Cache-Control"), "max-age=60")
        self.assertEqual(self.get("/nope.html").status, 404)
        self.assertEqual(self.get("/../etc/passwd").status, 403)
        self.assertEqual(self.get("/assets/%2e%2e/index.html").status, 403)
        self.assertEqual(self.get("/assets").status, 301)
        r = self.get("/about.html", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(int(r.header("Content-Length")),
                         os.path.getsize(os.path.join(self.root, "about.html")))
        self.assertEqual(self.get("/t/body?size=3").body, b"x 0")

    def test_bad_etag_practice(self):
        """Same size and mtime, different bytes: the origin still says 304."""
        path = os.path.join(self.root, "about.html")
        r1 = self.get("/about.html")
        st = os.stat(path)
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(0)
            f.write(data.replace(b"About", b"ABOUT", 1))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        r2 = self.get("/about.html", {"If-None-Match": r1.header("ETag")})
        self.assertEqual(r2.status, 304)
        r3 = self.get("/about.html", {"If-Modified-Since": r1.header("Last-Modified")})
        self.assertEqual(r3.status, 304)
        self.assertIn(b"ABOUT", self.get("/about.html").body)


class HarnessUnitTest(unittest.TestCase):
    def test_cache_status_parser(self):
        P = H.parse_cache_status
        self.assertEqual(P("freshcache; hit"), {"cache": "freshcache", "hit": True})
        self.assertEqual(P("freshcache; fwd=miss; stored"),
                         {"cache": "freshcache", "fwd": "miss", "stored": True})
        self.assertEqual(P("freshcache; fwd=stale; fwd-status=304"),
                         {"cache": "freshcache", "fwd": "stale", "fwd-status": 304})
        self.assertEqual(P("freshcache; fwd=uri-miss; collapsed"),
                         {"cache": "freshcache", "fwd": "uri-miss", "collapsed": True})
        self.assertEqual(P('other; hit, freshcache;fwd=miss;ttl=30;detail="a;b, c";key=?0'),
                         {"cache": "freshcache", "fwd": "miss", "ttl": 30, "detail": "a;b, c",
                          "key": False})
        self.assertEqual(P(None), {})
        self.assertEqual(P("other; hit"), {})

    def test_yaml(self):
        y = H.to_yaml({"listen": [{"address": "127.0.0.1:1", "tls": {"a": "b"}}],
                       "log": {"access": "off"}, "p": [{"match": {"content_type": ["text/html"]},
                                                        "cc": "public, max-age=1"}],
                       "workers": 2, "e": []})
        self.assertEqual(y, "listen:\n  - address: 127.0.0.1:1\n    tls:\n      a: b\n"
                            "log:\n  access: off\n"
                            "p:\n  - match:\n      content_type:\n        - text/html\n"
                            '    cc: "public, max-age=1"\n'
                            "workers: 2\ne: []")

    def test_deep_merge(self):
        base = {"a": {"b": 1, "c": 2}, "d": [1]}
        self.assertEqual(H.deep_merge(base, {"a": {"c": 3, "b": None}, "d": [2]}),
                         {"a": {"c": 3}, "d": [2]})
        self.assertEqual(base, {"a": {"b": 1, "c": 2}, "d": [1]})


if __name__ == "__main__":
    H.main()
