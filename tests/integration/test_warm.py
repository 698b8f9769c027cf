#!/usr/bin/env python3
"""`proxyctl warm` and `proxyctl deploy` (issue 14, items 2, 3 and 5).

The daemon fetches (admin POST /warm, one JSON line per URL streamed back,
then a summary) through its own request path: a warmed URL is then a hit
for a client sending the same Host.  A small origin of this file's own
serves pages, error statuses, sitemaps and sitemap indexes, and counts the
requests it has in progress at once, so the -j bound can be checked.  It
also misbehaves on demand (a body cut short, a connection reset, a sitemap
over the size bound): warm and verify must say what went wrong, per URL.

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py)."""

import http.server
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROXYCTL = os.environ.get("PROXYCTL")


class SiteOrigin:
    """Pages (/page/...), statuses (/status/N/...), sitemaps (/sitemap.xml?n=N&u=U),
    indexes (/index.xml?u=U), a self-nesting index (/loop.xml), a foreign
    host's sitemap (/foreign.xml), a non-sitemap (/bad.xml).  Every page
    may wait (?delay_ms=N); `busy_max` is the most requests in progress at
    once since the last reset.

    Misbehaving (see misbehave()): /cut/... announces a body and closes
    after half of it, /reset/... resets the connection after half of it;
    with ?first=ok the first request for that path is answered whole.
    /huge.xml is a sitemap one byte over WARM_MAX_SITEMAP_BYTES."""

    def __init__(self):
        self.lock = threading.Lock()
        self.busy = 0
        self.busy_max = 0
        self.counts = {}
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                origin.enter(self.path)
                try:
                    if origin.misbehave(self):
                        return
                    status, ctype, body, cc = origin.answer(self)
                finally:
                    origin.leave()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if cc:
                    self.send_header("Cache-Control", cc)
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass    # the proxy hanging up on a slow page (a test stopping it)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def enter(self, path):
        with self.lock:
            self.busy += 1
            self.busy_max = max(self.busy_max, self.busy)
            self.counts[path] = self.counts.get(path, 0) + 1

    def leave(self):
        with self.lock:
            self.busy -= 1

    def reset(self):
        with self.lock:
            self.busy_max = 0
            self.counts = {}

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    @staticmethod
    def urlset(locs):
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' +
                "".join("  <url><loc> %s </loc><changefreq>daily</changefreq></url>\n" % loc
                        for loc in locs) + "</urlset>\n").encode()

    @staticmethod
    def index(locs):
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' +
                "".join("<sitemap><loc>%s</loc></sitemap>\n" % loc for loc in locs) +
                "</sitemapindex>\n").encode()

    CUT_BODY = b"c" * 20000

    def misbehave(self, req):
        """Answer /cut/..., /reset/... and /huge.xml (True), or leave the
        request to answer()."""
        u = urllib.parse.urlsplit(req.path)
        how = u.path.split("/")[1]
        if how not in ("cut", "reset", "huge.xml"):
            return False
        req.close_connection = True
        if how == "huge.xml":
            # 50 MiB + 1 of well-formed XML: only its size is wrong
            body = b"<urlset>" + b" " * (50 * H.MiB + 1 - 17) + b"</urlset>"
            req.send_response(200)
            req.send_header("Content-Type", "application/xml")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            try:
                req.wfile.write(body)
            except OSError:
                pass        # the daemon stopped reading at its bound, as it should
            return True
        whole = "first=ok" in u.query and self.count(req.path) == 1
        body = self.CUT_BODY
        req.send_response(200)
        req.send_header("Content-Type", "text/plain")
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Cache-Control", "max-age=300")
        req.end_headers()
        if whole:
            req.wfile.write(body)
            return True
        req.wfile.write(body[:len(body) // 2])
        req.wfile.flush()
        # the head and half the body are out, well before the end: the
        # daemon answers with the head, then learns the body is cut
        time.sleep(0.3)
        if how == "reset":      # an RST: closed with a zero linger
            req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        else:                   # a FIN
            req.connection.shutdown(socket.SHUT_WR)
        req.connection.close()
        return True

    def answer(self, req):
        u = urllib.parse.urlsplit(req.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        delay = int(q.get("delay_ms", "0"))
        if delay:
            time.sleep(delay / 1000.0)
        host = req.headers.get("Host", "")
        base = "http://%s" % host
        xml = "application/xml"
        if u.path.startswith("/page/"):
            return 200, "text/plain", ("page %s\n" % req.path).encode(), "max-age=300"
        if u.path.startswith("/status/"):
            return int(u.path.split("/")[2]), "text/plain", b"status\n", "max-age=300"
        if u.path.startswith("/private/"):
            return 200, "text/plain", b"private\n", "private"
        if u.path == "/sitemap.xml":
            n, tag = int(q["n"]), q["u"]
            # an entity, a query string, a fragment: all as a client would ask
            locs = ["%s/page/%s-%d?a=1&amp;b=2#top" % (base, tag, i) for i in range(n)]
            return 200, xml, self.urlset(locs), None
        if u.path == "/index.xml":
            tag = q["u"]
            return 200, xml, self.index(["%s/sitemap.xml?n=2&amp;u=%s-a" % (base, tag),
                                         "%s/sitemap.xml?n=3&amp;u=%s-b" % (base, tag)]), None
        if u.path == "/loop.xml":
            return 200, xml, self.index(["%s/loop.xml" % base]), None
        if u.path == "/foreign.xml":
            tag = q["u"]
            return 200, xml, self.urlset(["%s/page/%s-ok" % (base, tag),
                                          "http://elsewhere.example/page/%s-no" % tag]), None
        if u.path == "/bad.xml":
            return 200, xml, b"<html><body>not a sitemap</body></html>", None
        return 404, "text/plain", b"no\n", None


SITE = SiteOrigin()


class WarmBase(H.ProxyTestCase):
    origin_port = SITE.port
    config = {"log": {"level": "info"}}

    def setUp(self):
        super().setUp()
        SITE.reset()
        self.host = "127.0.0.1:%d" % self.port     # what a browser sends to the listener

    def sock(self):
        return self.proxy.config["admin"]["socket"]

    def warm(self, *args, expect=0, stdin=None):
        p = subprocess.run([PROXYCTL, "-s", self.sock()] + list(args), capture_output=True,
                           text=True, timeout=60, input=stdin)
        if expect is not None:
            self.assertEqual(p.returncode, expect, "proxyctl %s: exit %d, expected %d\n"
                             "stdout: %r\nstderr: %r" % (" ".join(args), p.returncode, expect,
                                                         p.stdout, p.stderr))
        return p

    def client_get(self, target, host=None):
        return self.get(target, headers={"Host": host or self.host})

    def assertWarmHit(self, target, host=None):
        r = self.client_get(target, host)
        self.assertOk(r)
        self.assertHit(r)

    def admin_raw(self, data):
        """Send `data` on the admin socket; everything it answers until it closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.sock())
            s.sendall(data)
            chunks = []
            while True:
                d = s.recv(65536)
                if not d:
                    return b"".join(chunks)
                chunks.append(d)

    def stream(self, body):
        """POST /warm on the admin socket: (status, [JSON lines])."""
        buf = self.admin_raw(H.build_request(
            "POST", "/warm", [("Host", "localhost"), ("Connection", "close"),
                              ("Content-Type", "application/json")], json.dumps(body).encode()))
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        if b"transfer-encoding: chunked" in head.lower():
            out = b""
            while True:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size, 16)
                if n == 0:
                    break
                out += rest[:n]
                rest = rest[n + 2:]
            return status, [json.loads(line) for line in out.decode().splitlines()]
        return status, json.loads(rest)


class TestWarm(WarmBase):
    def test_paths_stored_then_served_as_hits(self):
        u = self.uniq()
        paths = ["/page/%s-%d" % (u, i) for i in range(3)]
        p = self.warm("warm", *paths)
        for path in paths:
            self.assertRegex(p.stdout, r"(?m)^stored +%s  200 fwd=miss; stored$" % re.escape(path))
            self.assertWarmHit(path)
            self.assertEqual(SITE.count(path), 1)
        self.assertIn("warmed 3 urls: 3 stored, 0 already fresh, 0 not stored, 0 failed", p.stdout)
        # A second warm finds them fresh and asks the origin nothing.
        p = self.warm("warm", *paths)
        self.assertIn("warmed 3 urls: 0 stored, 3 already fresh", p.stdout)
        for path in paths:
            self.assertEqual(SITE.count(path), 1)
        self.assertRegex(self.proxy.log_tail(),
                         r"admin: warmed 3 urls for host %s \(3 given, -j 8\): 0 stored, 3 fresh"
                         % re.escape(self.host))

    def test_absolute_urls_and_host(self):
        u = self.uniq()
        # --host: the key of clients that ask for www.example.test
        self.warm("warm", "--host", "WWW.example.test:80",
                  "http://www.example.test/page/%s-x?q=1#frag" % u)
        self.assertWarmHit("/page/%s-x?q=1" % u, host="www.example.test")
        # ... which is not the key of a client of the listener's address
        self.assertNotHit(self.client_get("/page/%s-x?q=1" % u))
        p = self.warm("warm", "http://elsewhere.example/page/%s" % u, expect=1)
        self.assertIn("host elsewhere.example is not the warm host", p.stderr)

    def test_failures_and_exit_status(self):
        u = self.uniq()
        p = self.warm("warm", "/page/%s-ok" % u, "/status/500/%s" % u, "/status/404/%s" % u,
                      "/private/%s" % u, expect=1)
        self.assertRegex(p.stdout, r"(?m)^failed +/status/500/%s  status 500$" % u)
        self.assertRegex(p.stdout, r"(?m)^failed +/status/404/%s  status 404$" % u)
        self.assertRegex(p.stdout, r"(?m)^not_stored +/private/%s  200 " % u)
        self.assertIn("warmed 4 urls: 1 stored, 0 already fresh, 1 not stored, 2 failed", p.stdout)
        # not stored is no failure
        self.warm("warm", "/private/%s-2" % u)

    def test_from_file_and_stdin(self):
        u = self.uniq()
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("# the release's pages\n\n/page/%s-1\n   /page/%s-2  \n# done\n" % (u, u))
        self.addCleanup(os.unlink, f.name)
        p = self.warm("warm", "--from", f.name)
        self.assertIn("warmed 2 urls: 2 stored", p.stdout)
        p = self.warm("warm", "--from", "-", stdin="/page/%s-3\n\n#x\n/page/%s-1\n" % (u, u))
        self.assertIn("warmed 2 urls: 1 stored, 1 already fresh", p.stdout)
        for i in (1, 2, 3):
            self.assertWarmHit("/page/%s-%d" % (u, i))
        p = self.warm("warm", "--from", "/nonexistent/urls.txt", expect=2)
        self.assertIn("cannot read /nonexistent/urls.txt", p.stderr)
        p = self.warm("warm", "--from", "-", stdin="# only comments\n\n", expect=2)
        self.assertIn("lists no URLs", p.stderr)

    def test_sitemap(self):
        u = self.uniq()
        p = self.warm("warm", "--sitemap", "/sitemap.xml?n=4&u=%s" % u)
        self.assertRegex(p.stdout, r"(?m)^sitemap +/sitemap.xml\?n=4&u=%s  4 listed$" % u)
        self.assertIn("warmed 4 urls: 4 stored", p.stdout)
        for i in range(4):
            # <loc> reduced to path and query: entity decoded, fragment gone
            path = "/page/%s-%d?a=1&b=2" % (u, i)
            self.assertWarmHit(path)
            self.assertEqual(SITE.count(path), 1)
        # The sitemap is the origin's each time, never a stored copy.
        self.warm("warm", "--sitemap", "/sitemap.xml?n=4&u=%s" % u)
        self.assertEqual(SITE.count("/sitemap.xml?n=4&u=%s" % u), 2)

    def test_sitemap_index(self):
        u = self.uniq()
        p = self.warm("warm", "--sitemap", "http://%s/index.xml?u=%s" % (self.host, u))
        self.assertIn("warmed 5 urls: 5 stored", p.stdout)
        for tag, n in (("a", 2), ("b", 3)):
            for i in range(n):
                self.assertWarmHit("/page/%s-%s-%d?a=1&b=2" % (u, tag, i))

    def test_sitemap_bounds_and_refusals(self):
        u = self.uniq()
        p = self.warm("warm", "--sitemap", "/loop.xml", expect=1)
        self.assertIn("nested deeper than 3 levels", p.stdout)
        p = self.warm("warm", "--sitemap", "/foreign.xml?u=%s" % u, expect=1)
        self.assertRegex(p.stdout, r"failed +http://elsewhere.example/page/%s-no  host "
                         r"elsewhere.example is not the warm host" % u)
        self.assertIn("warmed 2 urls: 1 stored, 0 already fresh, 0 not stored, 1 failed", p.stdout)
        self.assertWarmHit("/page/%s-ok" % u)
        p = self.warm("warm", "--sitemap", "/bad.xml", expect=1)
        self.assertRegex(p.stdout, r"failed +/bad.xml  not a sitemap: the root element is <html>")
        p = self.warm("warm", "--sitemap", "/status/404/sitemap.xml", expect=1)
        self.assertRegex(p.stdout, r"failed +/status/404/sitemap.xml  status 404")

    def test_concurrency_bound(self):
        u = self.uniq()
        paths = ["/page/%s-%d?delay_ms=150" % (u, i) for i in range(12)]
        self.warm("warm", "-j", "3", *paths)
        self.assertLessEqual(SITE.busy_max, 3)
        self.assertGreaterEqual(SITE.busy_max, 2, "no two fetches ever overlapped")
        SITE.reset()
        self.warm("warm", "-j1", *["/page/%s-one-%d?delay_ms=20" % (u, i) for i in range(5)])
        self.assertEqual(SITE.busy_max, 1)

    def test_json_lines(self):
        u = self.uniq()
        p = self.warm("--json", "warm", "/page/%s" % u, "/status/503/%s" % u, expect=1)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(len(lines), 3, p.stdout)
        by_url = {d.get("url"): d for d in lines[:2]}
        self.assertEqual(by_url["/page/%s" % u]["result"], "stored")
        self.assertEqual(by_url["/status/503/%s" % u]["result"], "failed")
        self.assertEqual(by_url["/status/503/%s" % u]["status"], 503)
        self.assertTrue(lines[2]["summary"])
        self.assertEqual((lines[2]["urls"], lines[2]["stored"], lines[2]["failed"]), (2, 1, 1))
        self.assertEqual(lines[2]["host"], self.host)

    def test_progress_bar_on_a_terminal(self):
        u = self.uniq()
        master, slave = pty.openpty()
        proc = subprocess.Popen([PROXYCTL, "-s", self.sock(), "warm", "/page/%s-1" % u,
                                 "/status/500/%s" % u], stdout=slave, stderr=slave,
                                stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                d = os.read(master, 4096)
            except OSError:
                break
            if not d:
                break
            out += d
        os.close(master)
        self.assertEqual(proc.wait(timeout=30), 1)
        text = out.decode()
        self.assertRegex(text, r"\r\x1b\[K\[#+\.*\] \d/2  stored")
        self.assertIn("failed     /status/500/%s  status 500" % u, text)
        # successes only move the bar: no line of their own
        self.assertNotRegex(text, r"(?m)^stored +/page/")
        self.assertIn("warmed 2 urls: 1 stored, 0 already fresh, 0 not stored, 1 failed", text)

    def test_admin_api(self):
        u = self.uniq()
        status, lines = self.stream({"urls": ["/page/%s" % u], "concurrency": 2,
                                     "host": self.host})
        self.assertEqual(status, 200)
        self.assertEqual(lines[0], {"url": "/page/%s" % u, "status": 200,
                                    "cache_status": "fwd=miss; stored", "result": "stored"})
        self.assertTrue(lines[-1]["summary"])
        for body, what in (({}, "nothing to warm"),
                           ({"urls": []}, "nothing to warm"),
                           ({"urls": ["/a"], "concurrency": 0}, "concurrency"),
                           ({"urls": ["/a"], "concurrency": 65}, "concurrency"),
                           ({"urls": ["/a"], "jobs": 2}, "unknown field"),
                           ({"urls": "/a"}, "array"),
                           ({"urls": [7]}, "urls[0]"),
                           ({"urls": ["a b"]}, "urls[0]"),
                           ({"urls": ["/a"], "host": "a/b"}, "host"),
                           ({"sitemap": "ftp://x/s.xml"}, "sitemap")):
            status, doc = self.proxy.admin("POST", "/warm", body)
            self.assertEqual(status, 400, (body, doc))
            self.assertIn(what, doc["error"], body)
        status, doc = self.proxy.admin("GET", "/warm")
        self.assertEqual(status, 405)

    def test_keep_alive_after_a_warm(self):
        """The stream ends with its last chunk; the connection takes the
        next request."""
        u = self.uniq()
        data = json.dumps({"urls": ["/page/%s" % u]}).encode()
        buf = self.admin_raw(
            H.build_request("POST", "/warm", [("Host", "localhost")], data) +
            H.build_request("GET", "/generation", [("Host", "localhost"), ("Connection", "close")]))
        self.assertIn(b"0\r\n\r\nHTTP/1.1 200 OK", buf)
        self.assertIn(b'"generation"', buf)

    def test_client_leaving_cancels(self):
        u = self.uniq()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.sock())
        paths = ["/page/%s-%d?delay_ms=300" % (u, i) for i in range(6)]
        data = json.dumps({"urls": paths, "concurrency": 1}).encode()
        s.sendall(H.build_request("POST", "/warm", [("Host", "localhost")], data))
        self.assertIn(b"200 OK", s.recv(4096))
        s.close()
        deadline = time.monotonic() + 10
        while "warm cancelled" not in self.proxy.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("admin: warm cancelled, its client left", self.proxy.log_tail())
        # what was in flight finished on its own; the rest was never asked
        time.sleep(0.5)
        self.assertLess(sum(SITE.count(p) for p in paths), len(paths))
        self.assertTrue(self.proxy.alive())

    def test_metrics_and_stats(self):
        u = self.uniq()

        def metrics():
            _, text = self.proxy.admin("GET", "/metrics")
            out = {}
            for line in text.splitlines():
                m = re.match(r'(freshcache_warm_\w+(?:\{result="\w+"\})?) (\d+)$', line)
                if m:
                    out[m.group(1)] = int(m.group(2))
            return out
        before = metrics()
        stats_before = self.admin_json("GET", "/stats")
        self.warm("warm", "/page/%s" % u, "/status/500/%s" % u, expect=1)
        after = metrics()
        self.assertEqual(after["freshcache_warm_runs_total"],
                         before["freshcache_warm_runs_total"] + 1)
        for result, n in (("stored", 1), ("failed", 1), ("fresh", 0), ("not_stored", 0)):
            key = 'freshcache_warm_urls_total{result="%s"}' % result
            self.assertEqual(after[key], before[key] + n, key)
        stats = self.admin_json("GET", "/stats")
        self.assertEqual(stats["warm_runs"], stats_before["warm_runs"] + 1)
        self.assertEqual(stats["warm_urls"], stats_before["warm_urls"] + 2)

    def test_usage_errors(self):
        p = self.warm("warm", expect=2)
        self.assertIn("give URLs, --from FILE or --sitemap PATH", p.stderr)
        self.warm("warm", "-j", "0", "/a", expect=2)
        self.warm("warm", "-j", "65", "/a", expect=2)
        self.warm("warm", "--bogus", expect=2)
        self.warm("deploy", "--verify", expect=2)
        self.warm("deploy", "stray", expect=2)
        p = subprocess.run([PROXYCTL, "-s", os.path.join(self.tmp, "nope.sock"), "warm", "/a"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)


class TestDeploy(WarmBase):
    def test_deploy_bump_warm_verify(self):
        u = self.uniq()
        pages = ["/page/%s-%d" % (u, i) for i in range(3)]
        for path in pages:
            self.client_get(path)
        gen = self.admin_json("GET", "/generation")["generation"]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(pages) + "\n")
        self.addCleanup(os.unlink, f.name)
        p = self.warm("deploy", "--from", f.name, "--verify", pages[0], pages[1])
        self.assertIn("generation %d (was %d)" % (gen + 1, gen), p.stdout)
        # the bump made the copies old: the warm fetched them again
        self.assertIn("warmed 3 urls: 3 stored", p.stdout)
        self.assertRegex(p.stdout, r"(?m)^fresh +%s " % re.escape(pages[0]))
        self.assertIn("deploy ok: generation bumped, 3 urls warmed, 0 failed, 2 paths verified",
                      p.stdout)
        # each page: the client, the warm, and verify's own look at the origin
        self.assertEqual([SITE.count(path) for path in pages], [3, 3, 2])
        for path in pages:
            self.assertWarmHit(path)

    def test_deploy_with_sitemap_and_policy(self):
        u = self.uniq()
        p = self.warm("deploy", "--policy", "default", "--sitemap", "/sitemap.xml?n=2&u=%s" % u)
        self.assertIn("policy default generation", p.stdout)
        self.assertIn("deploy ok: generation bumped, 2 urls warmed, 0 failed, not verified",
                      p.stdout)

    def test_deploy_failures(self):
        u = self.uniq()
        gen = self.admin_json("GET", "/generation")["generation"]
        # the bump fails: nothing else happens
        p = self.warm("deploy", "--policy", "nosuch", "--sitemap", "/sitemap.xml?n=1&u=%s" % u,
                      expect=1)
        self.assertIn("nothing warmed or verified", p.stderr)
        self.assertEqual(SITE.count("/sitemap.xml?n=1&u=%s" % u), 0)
        self.assertEqual(self.admin_json("GET", "/generation")["generation"], gen)
        # a warm fails: exit 1, the verify still runs
        p = self.warm("deploy", "--from", "-", "--verify", "/page/%s-v" % u, expect=1,
                      stdin="/status/500/%s\n/page/%s-v\n" % (u, u))
        self.assertIn("deploy FAILED: generation bumped, 2 urls warmed, 1 failed, 1 path verified",
                      p.stdout)
        # the bump alone
        p = self.warm("deploy")
        self.assertIn("deploy ok: generation bumped, not warmed, not verified", p.stdout)


class TestOriginFailsMidAnswer(WarmBase):
    """What warm and verify report when the origin lets them down after
    answering: a body cut short by a close or a reset, no answer within
    origin.read_timeout (2 s here), a sitemap over its size bound.  Each
    failure is the URL's own: the others in the same run are unaffected."""

    def verify(self, *paths):
        status, doc = self.proxy.admin("POST", "/verify", {"urls": list(paths)})
        self.assertEqual(status, 200, doc)
        return {r["url"]: r for r in doc["results"]}, doc

    def assertVerifyFailed(self, r, error):
        self.assertEqual(r.get("error"), error, r)
        self.assertEqual(r["origin_sha256"], "", r)
        self.assertIs(r["stale"], False, r)     # nothing to compare: not a verdict

    def test_verify_origin_closes_mid_body(self):
        u = self.uniq()
        cut, ok = "/cut/%s" % u, "/page/%s" % u
        by_url, doc = self.verify(cut, ok)
        self.assertVerifyFailed(by_url[cut], "origin closed the connection early")
        self.assertEqual(by_url[ok]["origin_status"], 200, by_url[ok])
        self.assertNotIn("error", by_url[ok])
        self.assertEqual(doc["stale"], 0, doc)
        self.assertIn("verify %s: origin closed the connection early" % cut,
                      self.proxy.log_tail())

    def test_verify_origin_resets_mid_body(self):
        u = self.uniq()
        # stored whole first: a stored copy and a failed look at the origin
        # is still no verdict of stale
        reset = "/reset/%s?first=ok" % u
        r = self.client_get(reset)
        self.assertOk(r, SiteOrigin.CUT_BODY)
        self.assertHit(self.client_get(reset))
        ok = "/page/%s" % u
        by_url, doc = self.verify(reset, ok)
        self.assertNotEqual(by_url[reset]["proxy_sha256"], "", by_url[reset])
        self.assertVerifyFailed(by_url[reset], "origin connection reset")
        self.assertEqual(by_url[ok]["origin_status"], 200, by_url[ok])
        self.assertEqual(doc["stale"], 0, doc)

    def test_verify_origin_read_timeout(self):
        u = self.uniq()
        slow = "/page/%s?delay_ms=4000" % u
        by_url, _ = self.verify(slow)
        self.assertVerifyFailed(by_url[slow], "origin read timeout")

    def test_warm_page_cut_mid_body(self):
        u = self.uniq()
        for how in ("cut", "reset"):
            with self.subTest(how=how):
                bad, ok = "/%s/%s" % (how, u), "/page/%s-%s" % (u, how)
                status, lines = self.stream({"urls": [bad, ok]})
                self.assertEqual(status, 200)
                by_url = {d.get("url"): d for d in lines[:-1]}
                self.assertEqual(by_url[bad]["result"], "failed", lines)
                self.assertEqual(by_url[bad]["status"], 200, lines)    # the head came
                self.assertEqual(by_url[bad]["error"],
                                 "the origin failed in the middle of the body", lines)
                self.assertEqual(by_url[ok]["result"], "stored", lines)
                self.assertEqual((lines[-1]["urls"], lines[-1]["stored"], lines[-1]["failed"]),
                                 (2, 1, 1), lines)
                # the cut body was not stored either
                self.assertNotHit(self.client_get(bad))

    def test_sitemap_cut_mid_body(self):
        u = self.uniq()
        sm = "/cut/%s/sitemap.xml" % u
        p = self.warm("warm", "--sitemap", sm, expect=1)
        self.assertRegex(p.stdout, r"(?m)^failed +%s  the origin failed in the middle of the "
                         r"body$" % re.escape(sm))
        self.assertIn("warmed 0 urls: 0 stored, 0 already fresh, 0 not stored, 1 failed",
                      p.stdout)

    def test_sitemap_over_the_size_bound(self):
        status, lines = self.stream({"sitemap": "/huge.xml"})
        self.assertEqual(status, 200)
        self.assertEqual(lines[0]["sitemap"], "/huge.xml", lines)
        self.assertEqual(lines[0]["result"], "failed", lines)
        self.assertEqual(lines[0]["error"], "body larger than %d bytes" % (50 * H.MiB), lines)
        self.assertEqual(lines[-1]["failed"], 1, lines)
        self.assertTrue(self.proxy.alive())


class TestWarmShutdown(WarmBase):
    def tearDown(self):
        pass            # the test stops the daemon itself

    def test_stop_while_warming(self):
        """SIGTERM in the middle of a warm: the daemon stops cleanly (and,
        under ASan, without a leak), whatever was in flight."""
        u = self.uniq()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(30)
        s.connect(self.sock())
        paths = ["/page/%s-%d?delay_ms=400" % (u, i) for i in range(8)]
        data = json.dumps({"urls": paths, "concurrency": 2}).encode()
        s.sendall(H.build_request("POST", "/warm", [("Host", "localhost")], data))
        self.assertIn(b"200 OK", s.recv(4096))
        deadline = time.monotonic() + 10
        while sum(SITE.count(p) for p in paths) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(sum(SITE.count(p) for p in paths), 0)
        self.assertEqual(self.proxy.stop(), 0, self.proxy.log_tail())
        self.assertIn("admin: warm cancelled, the daemon is stopping", self.proxy.log_tail())


class TestWarmOriginDown(WarmBase):
    origin_port = None
    origin_down = True

    def test_unreachable_origin(self):
        u = self.uniq()
        p = self.warm("warm", "/page/%s" % u, "--sitemap", "/sitemap.xml?n=1&u=%s" % u, expect=1)
        self.assertRegex(p.stdout, r"(?m)^failed +/page/%s  status 50[24]$" % u)
        self.assertRegex(p.stdout, r"(?m)^failed +/sitemap.xml\?n=1&u=%s  status 50[24]$" % u)
        self.assertIn("warmed 1 url: 0 stored, 0 already fresh, 0 not stored, 2 failed", p.stdout)

    def test_verify_unreachable_origin(self):
        """Refused before any connection was made: a connect failure, not
        a reset (TestOriginFailsMidAnswer has that one)."""
        path = "/page/%s" % self.uniq()
        status, doc = self.proxy.admin("POST", "/verify", {"urls": [path]})
        self.assertEqual(status, 200, doc)
        r = doc["results"][0]
        self.assertEqual(r.get("error"), "cannot connect to origin", r)
        self.assertEqual(r["origin_sha256"], "", r)
        self.assertIs(r["stale"], False, r)


if __name__ == "__main__":
    try:
        H.main()
    finally:
        SITE.stop()
