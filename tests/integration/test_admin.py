#!/usr/bin/env python3
"""The admin API on the Unix socket (docs/admin-api.md): every endpoint, its
status codes and errors, keep-alive and garbage on the socket, the socket's
mode, a stale socket file replaced at start, a live one never stolen, and
the generation surviving a restart.  Purges are checked end to end: what the
origin receives next (counts, validators) and the Cache-Status clients see."""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, req_header, url  # noqa: E402

POLICIES = [
    {"name": "html", "match": {"content_type": ["text/html"]}, "ttl": "60s"},
    {"name": "default", "ttl": "origin"},
]


class UnixConn(H.RawConn):
    """harness.RawConn (exact bytes, response parsing) on a Unix socket."""

    def __init__(self, path, timeout=10.0):
        self.port = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def call(self, method, path, body=None, headers=None, raw_body=None):
        """One request; returns (Response, parsed JSON or None)."""
        hs = [("Host", "localhost")] + list(headers or [])
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hs.append(("Content-Type", "application/json"))
        if data is None and method == "POST":
            data = b""
        self.send(H.build_request(method, path, hs, data, host=None))
        r = self.read_response(method)
        doc = None
        if (r.header("Content-Type") or "").startswith("application/json") and r.body:
            doc = json.loads(r.body)
        return r, doc


def wait_admin(path, proc=None, timeout=5.0):
    """The daemon binds its TCP listeners before the admin socket: wait for
    the latter too."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("freshcached exited with status %s" % proc.returncode)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.close()
            return
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise RuntimeError("admin socket %s not accepting within %.0fs" % (path, timeout))
            time.sleep(0.02)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class AdminBase(H.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.proxy is None:
            raise unittest.SkipTest("the admin API needs freshcached (FRESHCACHE_TEST_DIRECT=1)")
        cls.sock_path = cls.proxy.config["admin"]["socket"]
        wait_admin(cls.sock_path, cls.proxy.proc)

    def admin(self, method, path, body=None, raw_body=None, headers=None):
        with UnixConn(self.sock_path) as c:
            return c.call(method, path, body, headers=list(headers or []) + [("Connection", "close")],
                          raw_body=raw_body)

    def admin_ok(self, method, path, body=None):
        r, doc = self.admin(method, path, body)
        self.assertEqual(r.status, 200, "%s %s: %r %r" % (method, path, r, r.body))
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        self.assertTrue(r.body.endswith(b"\n"), r.body)
        self.assertEqual(r.body.count(b"\n"), 1, "one line of JSON: %r" % r.body)
        return doc

    def assertError(self, r, doc, status, pattern=None):
        self.assertEqual(r.status, status, "%r %r" % (r, r.body))
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        self.assertIsInstance(doc, dict, r.body)
        self.assertIsInstance(doc.get("error"), str, doc)
        if pattern:
            self.assertRegex(doc["error"], pattern)

    def generation(self):
        return self.admin_ok("GET", "/generation")["generation"]

    def cached(self, target, headers=None):
        """Fetch twice: the second one must be a hit.  Returns the first."""
        r1 = self.get(target, headers)
        self.assertOk(r1)
        r2 = self.get(target, headers)
        self.assertOk(r2)
        self.assertHit(r2)
        return r1


class AdminApiTest(AdminBase):
    config = {"admin": {"mode": "0600"}, "policies": POLICIES}

    # -- the socket ------------------------------------------------------------

    def test_socket_mode_from_config(self):
        st = os.stat(self.sock_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))

    # -- generations ----------------------------------------------------------

    def test_generation_bump(self):
        g = self.generation()
        self.assertIsInstance(g, int)
        self.assertGreaterEqual(g, 1)
        doc = self.admin_ok("POST", "/purge/generation")
        self.assertEqual(doc["generation"], g + 1, doc)
        self.assertEqual(doc["previous"], g, doc)
        self.assertEqual(self.generation(), g + 1)
        doc = self.admin_ok("POST", "/purge/generation", {})
        self.assertEqual((doc["generation"], doc["previous"]), (g + 2, g + 1))
        self.assertEqual(self.generation(), g + 2)

    def test_generation_per_policy(self):
        doc = self.admin_ok("GET", "/generation")
        names = [p["name"] for p in POLICIES]
        self.assertEqual(list(doc["policies"]), names, "every policy, in config order")
        before = doc["policies"]["html"]
        self.admin_ok("POST", "/purge/generation", {"policy": "html"})
        after = self.admin_ok("GET", "/generation")
        self.assertEqual(after["policies"]["html"], before + 1, after)
        self.assertEqual(after["generation"], doc["generation"], after)
        for name in names:
            if name != "html":
                self.assertEqual(after["policies"][name], doc["policies"][name], after)

    def test_generation_bump_refetches_without_validators(self):
        seed = self.uniq()
        t = url("/t/body", size=500, seed=seed, cc="max-age=60", etag=1, lm="now")
        self.cached(t)
        self.assertOriginCount(t, 1)
        self.admin_ok("POST", "/purge/generation")
        r = self.get(t)
        self.assertOk(r, expected_body(500, seed))
        self.assertNotHit(r)
        self.assertOriginCount(t, 2)
        last = self.origin.log(t)[-1]
        self.assertIsNone(req_header(last, "If-None-Match"),
                          "after a generation bump the refetch must be unconditional: %r" % last)
        self.assertIsNone(req_header(last, "If-Modified-Since"), last)
        self.assertHit(self.get(t))
        self.assertOriginCount(t, 2)

    def test_policy_bump_leaves_other_policies(self):
        seed = self.uniq()
        page = url("/t/body", size=100, seed=seed + "-p", ct="text/html", cc="max-age=60")
        asset = url("/t/body", size=100, seed=seed + "-a", ct="text/css", cc="max-age=60")
        self.cached(page)
        self.cached(asset)
        g = self.generation()
        doc = self.admin_ok("POST", "/purge/generation", {"policy": "html"})
        self.assertEqual(doc["previous"] + 1, doc["generation"], doc)
        self.assertEqual(self.generation(), g, "a policy bump leaves the global generation")
        r = self.get(page)
        self.assertOk(r)
        self.assertNotHit(r)
        self.assertOriginCount(page, 2)
        self.assertHit(self.get(asset))
        self.assertOriginCount(asset, 1)

    def test_unknown_policy(self):
        g = self.generation()
        r, doc = self.admin("POST", "/purge/generation", {"policy": "nope"})
        self.assertError(r, doc, 404)
        self.assertEqual(doc["error"], 'unknown policy "nope"')
        self.assertEqual(self.generation(), g)

    def test_generation_bad_bodies(self):
        g = self.generation()
        for raw in (b'{"policy": "html"', b"[]", b'"html"', b'{"polcy": "html"}',
                    b'{"policy": 3}', b'{"policy": ""}', b"\xff\xfe"):
            with self.subTest(body=raw):
                r, doc = self.admin("POST", "/purge/generation", raw_body=raw)
                self.assertError(r, doc, 400)
        self.assertEqual(self.generation(), g, "a rejected request must not bump")

    # -- purges ---------------------------------------------------------------

    def test_purge_url(self):
        seed = self.uniq()
        t = url("/t/body", size=300, seed=seed, cc="max-age=60")
        other = url("/t/body", size=300, seed=seed + "-other", cc="max-age=60")
        self.cached(t)
        self.cached(other)
        doc = self.admin_ok("POST", "/purge", {"url": t})
        self.assertEqual(doc, {"purged": 1})
        r = self.get(t)
        self.assertOk(r, expected_body(300, seed))
        self.assertEqual(r.cache_status.get("fwd"), "miss", r)
        self.assertOriginCount(t, 2)
        self.assertHit(self.get(other))
        self.assertOriginCount(other, 1)
        # nothing stored any more under that URL
        self.assertHit(self.get(t))
        doc = self.admin_ok("POST", "/purge", {"url": url("/t/body", seed=seed + "-never")})
        self.assertEqual(doc, {"purged": 0})

    def test_purge_absolute_url(self):
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed, cc="max-age=60")
        self.cached(t)
        doc = self.admin_ok("POST", "/purge", {"url": "http://127.0.0.1:%d%s" % (self.port, t)})
        self.assertEqual(doc["purged"], 1, doc)
        self.assertNotHit(self.get(t))
        self.assertOriginCount(t, 2)

    def test_purge_prefix(self):
        seed = self.uniq()
        a = url("/t/body", seed=seed, size=11, cc="max-age=60")
        b = url("/t/body", seed=seed, size=12, cc="max-age=60")
        keep = url("/t/body", seed=seed + "x", size=13, cc="max-age=60")
        for t in (a, b, keep):
            self.cached(t)
        prefix = url("/t/body", seed=seed) + "&"
        self.assertTrue(a.startswith(prefix) and b.startswith(prefix) and not keep.startswith(prefix))
        doc = self.admin_ok("POST", "/purge", {"prefix": prefix})
        self.assertEqual(doc, {"purged": 2})
        for t in (a, b):
            r = self.get(t)
            self.assertEqual(r.cache_status.get("fwd"), "miss", r)
            self.assertOriginCount(t, 2)
        self.assertHit(self.get(keep))
        self.assertOriginCount(keep, 1)

    def test_purge_tag(self):
        seed = self.uniq()
        tag = "tag-" + seed
        a = url("/t/body", seed=seed + "a", size=10, cc="max-age=60",
                hdr="Surrogate-Key:%s other-%s" % (tag, seed))
        b = url("/t/body", seed=seed + "b", size=10, cc="max-age=60", hdr="Cache-Tag:x-%s,%s" % (seed, tag))
        keep = url("/t/body", seed=seed + "c", size=10, cc="max-age=60", hdr="Surrogate-Key:other-%s" % seed)
        for t in (a, b, keep):
            self.cached(t)
        doc = self.admin_ok("POST", "/purge", {"tag": tag})
        self.assertEqual(doc, {"purged": 2})
        for t in (a, b):
            r = self.get(t)
            self.assertEqual(r.cache_status.get("fwd"), "miss", r)
            self.assertOriginCount(t, 2)
        self.assertHit(self.get(keep))
        self.assertOriginCount(keep, 1)

    def test_soft_purge_revalidates(self):
        seed = self.uniq()
        t = url("/t/body", size=200, seed=seed, cc="max-age=60", etag=1)
        self.cached(t)
        doc = self.admin_ok("POST", "/purge", {"url": t, "soft": True})
        self.assertEqual(doc, {"purged": 1})
        r = self.get(t)
        self.assertOk(r, expected_body(200, seed))
        cs = r.cache_status
        self.assertEqual(cs.get("fwd"), "stale", r)
        self.assertEqual(cs.get("fwd-status"), 304, r)
        self.assertOriginCount(t, 2)
        last = self.origin.log(t)[-1]
        self.assertEqual(req_header(last, "If-None-Match"), H.origin_etag(expected_body(200, seed)),
                         "a soft purge revalidates with the origin's validator: %r" % last)
        self.assertHit(self.get(t))
        self.assertOriginCount(t, 2)

    def test_purge_bad_requests(self):
        cases = [
            None,                                   # no body
            {},
            {"url": "/a", "tag": "t"},
            {"url": "/a", "prefix": "/"},
            {"url": 5},
            {"url": ""},
            {"prefix": "static/"},
            {"url": "ftp://x/"},
            {"tag": ["t"]},
            {"url": "/a", "soft": "yes"},
            {"url": "/a", "hard": True},
            ["/a"],
        ]
        for body in cases:
            with self.subTest(body=body):
                r, doc = self.admin("POST", "/purge", body)
                self.assertError(r, doc, 400)
        r, doc = self.admin("POST", "/purge", raw_body=b'{"url": "/a"')
        self.assertError(r, doc, 400, "JSON")
        r, doc = self.admin("POST", "/purge", raw_body=b'{"url": "/a", "url": "/b"}')
        self.assertError(r, doc, 400)

    # -- stats and metrics ------------------------------------------------------

    STATS_KEYS = ["hits", "misses", "revalidations", "stale", "passes", "collapsed", "requests",
                  "origin_requests", "origin_errors", "client_errors", "objects", "bytes",
                  "max_bytes", "evictions", "purges", "generation", "uptime", "connections"]

    def test_stats(self):
        seed = self.uniq()
        t = url("/t/body", size=1000, seed=seed, cc="max-age=60")
        before = self.admin_ok("GET", "/stats")
        for k in self.STATS_KEYS:
            self.assertIn(k, before)
            self.assertIsInstance(before[k], int, k)
            self.assertGreaterEqual(before[k], 0, k)
        self.cached(t)
        after = self.admin_ok("GET", "/stats")
        self.assertGreaterEqual(after["requests"], before["requests"] + 2, after)
        self.assertGreaterEqual(after["hits"], before["hits"] + 1, after)
        self.assertGreaterEqual(after["misses"], before["misses"] + 1, after)
        self.assertGreaterEqual(after["origin_requests"], before["origin_requests"] + 1, after)
        self.assertGreaterEqual(after["objects"], 1, after)
        self.assertGreaterEqual(after["bytes"], 1000, after)
        self.assertEqual(after["max_bytes"], 64 * H.MiB, after)
        self.assertEqual(after["generation"], self.generation())
        self.assertLess(after["uptime"], 3600)
        self.admin_ok("POST", "/purge", {"url": t})
        self.assertGreater(self.admin_ok("GET", "/stats")["purges"], after["purges"])
        with self.conn() as c:      # one client connection open now
            c.request("GET", t)
            self.assertGreaterEqual(self.admin_ok("GET", "/stats")["connections"], 1)

    def test_metrics(self):
        self.cached(url("/t/body", size=10, seed=self.uniq(), cc="max-age=60"))
        r, _ = self.admin("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain; version=0.0.4"), r)
        text = r.body.decode()
        self.assertTrue(text.endswith("\n"))
        helps, types, values, labelled = {}, {}, {}, {}
        for line in text.splitlines():
            if line.startswith("# HELP "):
                name, _, h = line[7:].partition(" ")
                helps[name] = h
            elif line.startswith("# TYPE "):
                name, _, ty = line[7:].partition(" ")
                types[name] = ty
            else:
                m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\d+(?:\.\d+)?)", line)
                self.assertIsNotNone(m, "bad exposition line %r" % line)
                values[m.group(1)] = float(m.group(3))
                if m.group(2):
                    labelled[m.group(1) + m.group(2)] = float(m.group(3))
        for name in values:
            # a histogram's series are NAME_bucket, NAME_sum and NAME_count
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if types.get(base) == "histogram":
                name = base
            self.assertIn(name, types, "no # TYPE for %s" % name)
            self.assertIn(name, helps, "no # HELP for %s" % name)
            if types[name] == "counter":
                self.assertTrue(name.endswith("_total"), name)
        for name in ("freshcache_requests_total", "freshcache_cache_hits_total",
                     "freshcache_cache_misses_total", "freshcache_origin_requests_total"):
            self.assertEqual(types.get(name), "counter", name)
            self.assertGreaterEqual(values[name], 1, name)
        for name in ("freshcache_objects", "freshcache_bytes", "freshcache_generation",
                     "freshcache_uptime_seconds", "freshcache_connections"):
            self.assertEqual(types.get(name), "gauge", name)
        self.assertEqual(values["freshcache_generation"], self.generation())
        # the cached() helper made a miss then a hit
        self.assertGreaterEqual(labelled['freshcache_responses_total{cache="hit"}'], 1)
        self.assertGreaterEqual(labelled['freshcache_responses_total{cache="miss"}'], 1)
        self.assertGreaterEqual(values["freshcache_objects"], 1)

    # -- reload -----------------------------------------------------------------

    def test_reload(self):
        self.assertEqual(self.admin_ok("POST", "/reload"), {"ok": True})

    def test_reload_refused_keeps_serving(self):
        path = self.proxy.config_path
        with open(path) as f:
            good = f.read()
        try:
            with open(path, "w") as f:
                f.write(good + "no_such_key: 1\n")
            r, doc = self.admin("POST", "/reload")
            self.assertEqual(r.status, 422, r)
            self.assertIs(doc.get("ok"), False, doc)
            self.assertRegex(doc.get("error", ""), r"^.+:\d+:\d+: ", doc)
            self.assertIn(os.path.basename(path), doc["error"])
        finally:
            with open(path, "w") as f:
                f.write(good)
        seed = self.uniq()
        self.assertOk(self.get(url("/t/body", size=10, seed=seed)), expected_body(10, seed))
        self.assertEqual(self.admin_ok("POST", "/reload"), {"ok": True})

    # -- verify -------------------------------------------------------------------

    def test_verify(self):
        key = self.uniq()
        t = url("/t/mutable", key=key)
        self.origin.set(key, "one")
        self.cached(t)
        missing = url("/t/body", size=5, seed=self.uniq())
        doc = self.admin_ok("POST", "/verify", {"urls": [t, missing]})
        self.assertEqual(doc["stale"], 0, doc)
        r0, r1 = doc["results"]
        self.assertEqual(r0["url"], t)
        self.assertEqual(r0["proxy_sha256"], sha256(b"one\n"), r0)
        self.assertEqual(r0["origin_sha256"], sha256(b"one\n"), r0)
        self.assertEqual(r0["origin_status"], 200, r0)
        self.assertIs(r0["stale"], False)
        self.assertEqual(r1["url"], missing)
        self.assertEqual(r1["proxy_sha256"], "", r1)
        self.assertEqual(r1["origin_sha256"], sha256(expected_body(5, missing.split("seed=")[1])), r1)
        self.assertIs(r1["stale"], False, r1)
        # a deploy changes the origin's content: the stored copy is stale
        self.origin.set(key, "two")
        doc = self.admin_ok("POST", "/verify", {"urls": [t]})
        self.assertEqual(doc["stale"], 1, doc)
        r0 = doc["results"][0]
        self.assertIs(r0["stale"], True, r0)
        self.assertEqual(r0["proxy_sha256"], sha256(b"one\n"), r0)
        self.assertEqual(r0["origin_sha256"], sha256(b"two\n"), r0)
        # verify itself must not have touched the cache
        self.assertHit(self.get(t))

    def test_verify_compares_status(self):
        # an error page stored under the html policy, then the page appears
        # with the very same bytes: the stored 404 is stale all the same
        key = self.uniq()
        t = url("/t/mutable", key=key, ct="text/html")
        self.origin.set(key, "page", status=404)
        r = self.get(t)
        self.assertEqual(r.status, 404, r)
        r = self.get(t)
        self.assertEqual(r.status, 404, r)
        self.assertHit(r)
        # content-hash validators are for 2xx bodies only
        self.assertIsNone(r.header("ETag"), r)
        self.assertIsNone(r.header("Last-Modified"), r)
        doc = self.admin_ok("POST", "/verify", {"urls": [t]})
        r0 = doc["results"][0]
        self.assertEqual((r0["proxy_status"], r0["origin_status"]), (404, 404), r0)
        self.assertIs(r0["stale"], False, r0)
        self.origin.set(key, "page", status=200)
        doc = self.admin_ok("POST", "/verify", {"urls": [t]})
        r0 = doc["results"][0]
        self.assertEqual(r0["proxy_sha256"], r0["origin_sha256"], r0)
        self.assertEqual((r0["proxy_status"], r0["origin_status"]), (404, 200), r0)
        self.assertIs(r0["stale"], True, r0)
        self.assertEqual(doc["stale"], 1, doc)
        # and a 200 has them
        self.admin_ok("POST", "/purge", {"url": t})
        r = self.get(t)
        r = self.get(t)
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.header("ETag") or "", r'^"[0-9a-f]{64}"$', r)
        self.assertIsNotNone(r.header("Last-Modified"), r)

    def test_verify_bad_requests(self):
        for body in (None, {}, {"urls": []}, {"urls": "/"}, {"urls": [1]}, {"urls": ["relative"]},
                     {"urls": ["/"], "x": 1}, {"urls": ["/" + "a" * 2000]}):
            with self.subTest(body=body):
                r, doc = self.admin("POST", "/verify", body)
                self.assertError(r, doc, 400)

    def test_verify_client_leaves_early(self):
        slow = url("/t/body", size=10, seed=self.uniq(), delay_ms=800)
        body = json.dumps({"urls": [slow]}).encode()
        for how in ("close", "shutdown-then-close"):
            with self.subTest(how=how):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock_path)
                s.sendall(H.build_request("POST", "/verify", [("Content-Length", str(len(body)))],
                                          body, host=None))
                time.sleep(0.2)
                if how != "close":
                    s.shutdown(socket.SHUT_WR)
                    time.sleep(0.05)
                s.close()
                self.admin_ok("GET", "/generation")
        time.sleep(1.5)     # the verifies finish with nobody to answer
        self.assertTrue(self.proxy.alive(), self.proxy.log_tail())
        self.admin_ok("GET", "/stats")

    def test_verify_half_close_is_answered(self):
        t = url("/t/body", size=10, seed=self.uniq(), delay_ms=300)
        body = json.dumps({"urls": [t]}).encode()
        with UnixConn(self.sock_path) as c:
            c.send(H.build_request("POST", "/verify", [("Content-Length", str(len(body)))], body,
                                   host=None))
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body)["results"][0]["origin_status"], 200)
            self.assertTrue(c.wait_closed(5))

    # -- HTTP on the socket ------------------------------------------------------

    def test_not_found_and_method_not_allowed(self):
        r, doc = self.admin("GET", "/nope")
        self.assertError(r, doc, 404)
        r, doc = self.admin("GET", "/stats/")
        self.assertError(r, doc, 404)
        for method, path, allow in (("GET", "/purge", "POST"), ("GET", "/purge/generation", "POST"),
                                    ("GET", "/reload", "POST"), ("GET", "/verify", "POST"),
                                    ("POST", "/stats", "GET"), ("POST", "/generation", "GET"),
                                    ("DELETE", "/metrics", "GET"), ("PUT", "/purge", "POST")):
            with self.subTest(method=method, path=path):
                r, doc = self.admin(method, path, raw_body=b"" if method in ("PUT",) else None)
                self.assertError(r, doc, 405)
                allowed = [m.strip() for m in (r.header("Allow") or "").split(",")]
                self.assertIn(allow, allowed, r)

    def test_keep_alive_and_pipelining(self):
        with UnixConn(self.sock_path) as c:
            g = c.call("GET", "/generation")[1]["generation"]
            self.assertEqual(c.call("GET", "/stats")[0].status, 200)
            body = json.dumps({"url": "/nothing-" + self.uniq()}).encode()
            c.send(H.build_request("GET", "/generation", [], None, host="localhost") +
                   H.build_request("POST", "/purge", [], body, host="localhost") +
                   H.build_request("GET", "/nope", [], None, host="localhost") +
                   H.build_request("HEAD", "/stats", [], None, host="localhost") +
                   H.build_request("GET", "/generation?x=1", [("Connection", "close")], None,
                                   host="localhost"))
            r1 = c.read_response()
            r2 = c.read_response("POST")
            r3 = c.read_response()
            r4 = c.read_response("HEAD")
            r5 = c.read_response()
            self.assertEqual(json.loads(r1.body)["generation"], g)
            self.assertEqual(json.loads(r2.body), {"purged": 0})
            self.assertEqual(r3.status, 404)
            self.assertEqual(r4.status, 200)
            self.assertEqual(r4.body, b"")
            self.assertGreater(int(r4.header("Content-Length")), 0)
            self.assertEqual(json.loads(r5.body)["generation"], g)
            self.assertTrue(c.wait_closed(5), "Connection: close must close")

    def test_pipelined_then_half_close(self):
        """Everything sent before the client's EOF is answered, in order, even
        with a /verify (answered asynchronously) in the middle."""
        t = url("/t/body", size=10, seed=self.uniq(), delay_ms=200)
        body = json.dumps({"urls": [t]}).encode()
        with UnixConn(self.sock_path) as c:
            c.send(H.build_request("GET", "/generation", [], None, host="localhost") +
                   H.build_request("POST", "/verify", [], body, host="localhost") +
                   H.build_request("GET", "/stats", [], None, host="localhost"))
            c.sock.shutdown(socket.SHUT_WR)
            r1 = c.read_response()
            r2 = c.read_response("POST")
            r3 = c.read_response()
            self.assertIn("generation", json.loads(r1.body))
            self.assertEqual(json.loads(r2.body)["results"][0]["url"], t)
            self.assertIn("hits", json.loads(r3.body))
            self.assertEqual(r3.header("Connection"), "close", r3)
            self.assertTrue(c.wait_closed(5))

    def test_expect_continue_and_chunked_body(self):
        with UnixConn(self.sock_path) as c:
            body = json.dumps({"url": "/nothing-" + self.uniq()}).encode()
            c.send(H.build_request("POST", "/purge", [("Expect", "100-continue"),
                                                       ("Content-Length", str(len(body)))],
                                   None, host="localhost"))
            self.assertEqual(c._readline(), b"HTTP/1.1 100 Continue\r\n")
            self.assertEqual(c._readline(), b"\r\n")
            c.send(body)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body), {"purged": 0})
        with UnixConn(self.sock_path) as c:
            body = json.dumps({"url": "/nothing-" + self.uniq()}).encode()
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            c.send(H.build_request("POST", "/purge", [("Transfer-Encoding", "chunked")], chunked,
                                   host="localhost"))
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body), {"purged": 0})

    def test_garbage_and_limits(self):
        def raw(data):
            with UnixConn(self.sock_path, timeout=5) as c:
                c.send(data)
                try:
                    r = c.read_response()
                except H.NoResponse:
                    r = None
                closed = c.wait_closed(5)
                return r, closed

        for data in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /stats HTTP/9.9\r\n\r\n",
                     b"GET /stats HTTP/1.1\r\nBad Header\r\n\r\n",
                     b"POST /purge HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"):
            with self.subTest(data=data[:30]):
                r, closed = raw(data)
                self.assertIsNotNone(r)
                self.assertEqual(r.status, 400, r)
                self.assertTrue(closed)
        r, closed = raw(b"GET /stats HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertEqual(r.status, 431, r)
        self.assertTrue(closed)
        r, closed = raw(b"POST /purge HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
        self.assertEqual(r.status, 413, r)
        self.assertTrue(closed)
        big = b"x" * (H.MiB + 100)
        r, closed = raw(b"POST /purge HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(big)
                        + big + b"\r\n0\r\n\r\n")
        self.assertEqual(r.status, 413, r)
        self.assertTrue(closed)
        # a client that sends half a request and leaves
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock_path)
        s.sendall(b"POST /purge HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        s.close()
        self.assertTrue(self.proxy.alive())
        self.admin_ok("GET", "/generation")

    def test_connection_limit(self):
        """64 idle admin connections: one more is closed unanswered, and once
        they are gone the API answers again."""
        idle = []
        try:
            for _ in range(64):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock_path)
                idle.append(s)
            time.sleep(0.2)
            with UnixConn(self.sock_path, timeout=5) as c:
                with self.assertRaises((H.NoResponse, ConnectionError)):
                    c.call("GET", "/generation")
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                self.admin_ok("GET", "/generation")
                break
            except (H.NoResponse, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.assertTrue(self.proxy.alive())

    def test_curl_unix_socket(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl is not installed")
        out = subprocess.run([curl, "-sS", "--unix-socket", self.sock_path, "http://localhost/generation"],
                             capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["generation"], self.generation())
        out = subprocess.run([curl, "-sS", "--unix-socket", self.sock_path, "-X", "POST",
                              "http://localhost/purge", "-d", '{"prefix": "/nothing/"}'],
                             capture_output=True, timeout=10)
        self.assertEqual(json.loads(out.stdout), {"purged": 0})


class AdminLifecycleTest(AdminBase):
    """Start and stop: the default mode, stale and live sockets, persistence."""
    config = {"policies": POLICIES}

    def tearDown(self):
        if not self.proxy.alive():
            self.restart()
        super().tearDown()

    def restart(self):
        if self.proxy.alive():
            self.proxy.stop()
        self.proxy.start()
        wait_admin(self.sock_path, self.proxy.proc)

    def run_second(self, admin_socket):
        """Start another freshcached with its own port and state but the given
        admin socket; returns (exit status or None if still running, output)."""
        tmp = os.path.join(self.tmp, "second-" + self.uniq())
        os.makedirs(tmp)
        cfg = H.deep_merge(self.proxy.config, {
            "listen": [{"address": "127.0.0.1:%d" % H.free_port()}],
            "state_dir": os.path.join(tmp, "state"),
            "admin": {"socket": admin_socket},
        })
        os.makedirs(cfg["state_dir"])
        path = os.path.join(tmp, "freshcache.yaml")
        with open(path, "w") as f:
            f.write(H.to_yaml(cfg) + "\n")
        p = subprocess.Popen([H.FRESHCACHED, "-c", path], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        H._children.append(p)
        try:
            out, _ = p.communicate(timeout=5)
            return p.returncode, out.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            H._stop_process(p)
            return None, ""
        finally:
            if p in H._children:
                H._children.remove(p)

    def test_default_mode(self):
        st = os.stat(self.sock_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, oct(st.st_mode))

    def test_generation_persists_across_restart(self):
        self.admin_ok("POST", "/purge/generation")
        g = self.admin_ok("POST", "/purge/generation")["generation"]
        self.restart()
        self.assertEqual(self.generation(), g)
        self.assertEqual(self.admin_ok("POST", "/purge/generation"), {"generation": g + 1, "previous": g})

    def test_socket_removed_on_stop(self):
        self.proxy.stop()
        self.assertFalse(os.path.exists(self.sock_path))

    def test_stale_socket_replaced(self):
        self.proxy.stop()
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock_path)      # what a crashed run leaves: a file nobody listens on
        stale.close()
        self.assertTrue(stat.S_ISSOCK(os.stat(self.sock_path).st_mode))
        self.restart()
        st = os.stat(self.sock_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, oct(st.st_mode))
        self.assertIsInstance(self.generation(), int)

    def test_live_socket_not_stolen(self):
        g = self.generation()
        status, out = self.run_second(self.sock_path)
        self.assertIsNotNone(status, "a second daemon must refuse to start")
        self.assertNotEqual(status, 0, out)
        self.assertIn("in use by another process", out)
        self.assertTrue(os.path.exists(self.sock_path))
        self.assertEqual(self.generation(), g, "the first daemon still answers")

    def test_not_a_socket_refused(self):
        path = os.path.join(self.tmp, "not-a-socket")
        with open(path, "w") as f:
            f.write("precious\n")
        status, out = self.run_second(path)
        self.assertIsNotNone(status)
        self.assertNotEqual(status, 0, out)
        self.assertIn("not a socket", out)
        with open(path) as f:
            self.assertEqual(f.read(), "precious\n", "the file must be left alone")

    def test_missing_directory_reported(self):
        status, out = self.run_second(os.path.join(self.tmp, "no-such-dir", "run", "admin.sock"))
        self.assertIsNotNone(status)
        self.assertNotEqual(status, 0, out)
        self.assertRegex(out, r"its parent \S+/no-such-dir does not exist")

    def test_missing_directory_created(self):
        # like systemd's RuntimeDirectory=: the socket's directory is made
        # (0750) when its parent exists
        d = os.path.join(self.tmp, "run-" + self.uniq())
        status, out = self.run_second(os.path.join(d, "admin.sock"))
        self.assertIsNone(status, "the second daemon should be serving: %s" % out)
        mode = stat.S_IMODE(os.stat(d).st_mode)
        self.assertEqual(mode & 0o700, 0o700, oct(mode))
        self.assertEqual(mode & 0o027, 0, "never group-writable or open to others: %s" % oct(mode))


class MetricsListenTest(H.ProxyTestCase):
    """metrics.listen: the counters over loopback TCP, and nothing else."""
    metrics_port = H.free_port()
    config = {"metrics": {"listen": "127.0.0.1:%d" % metrics_port}}

    def metrics_get(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read().decode()

    def test_metrics_over_tcp(self):
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed, cc="max-age=60")
        self.assertOk(self.get(t), expected_body(10, seed))
        self.assertOk(self.get(t), expected_body(10, seed))
        status, ctype, text = self.metrics_get("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        self.assertIn('freshcache_responses_total{cache="hit"} ', text)
        self.assertIn("freshcache_origin_latency_seconds_count ", text)

    def test_nothing_else_over_tcp(self):
        # no credentials to check on TCP: the admin actions must not be there
        before = self.proxy.admin("GET", "/generation")[1]["generation"]
        for method, path in (("POST", "/purge/generation"), ("GET", "/stats"),
                             ("POST", "/reload"), ("GET", "/generation")):
            status, _, _ = self.metrics_get(method, path)
            self.assertEqual(status, 404, (method, path))
        self.assertEqual(self.proxy.admin("GET", "/generation")[1]["generation"], before)


if __name__ == "__main__":
    H.main()
