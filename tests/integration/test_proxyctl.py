#!/usr/bin/env python3
"""proxyctl against a fake admin server: every command, --json, exit codes
0/1/2/3, socket precedence (-s, $FRESHCACHE_ADMIN, default), usage, the
wire format of its requests and how it reads odd (but valid) answers.

The fake server speaks the Admin API of docs/admin-api.md / the spec over a
Unix socket with canned JSON answers and records every request, so this
test needs only the proxyctl binary:

    PROXYCTL=build/proxyctl python3 tests/integration/test_proxyctl.py
"""

import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PROXYCTL = os.environ.get("PROXYCTL")
DEFAULT_SOCKET = "/run/freshcache/admin.sock"
ELLIPSIS = "\u2026"

HEX_A = "ab" * 32
HEX_B = "cd" * 32
HEX_C = "0123456789abcdef" * 4


def reason(status):
    return {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict",
            500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}.get(status, "Whatever")


class Route:
    """How the fake server answers one (method, path).

    body: dict/list (sent as JSON), str/bytes (sent raw) or a callable
    taking the request dict and returning one of those.
    mode: normal (Content-Length), chunked, close (close-delimited),
    split (trickled in small pieces), hang (never answers),
    truncate (closes mid-body), garbage (not HTTP), continue (100 first),
    reset (closes without answering).
    """

    def __init__(self, body=None, status=200, mode="normal", content_type="application/json"):
        self.body, self.status, self.mode, self.content_type = body, status, mode, content_type


class Handler(socketserver.BaseRequestHandler):

    def handle(self):
        srv = self.server.fake
        sock = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:length]
        parsed = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = ValueError
        req = {"method": method, "path": target, "version": version, "headers": headers,
               "raw_head": head, "body": body, "json": parsed}
        with srv.lock:
            srv.requests.append(req)
            route = srv.routes.get((method, target))
        if route is None:
            route = Route({"error": "no such endpoint: %s %s" % (method, target)}, status=404)
        self.answer(sock, route, req)

    def answer(self, sock, route, req):
        srv = self.server.fake
        body = route.body(req) if callable(route.body) else route.body
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body or b""
        status_line = "HTTP/1.1 %d %s\r\n" % (route.status, reason(route.status))
        ctype = "Content-Type: %s\r\n" % route.content_type
        mode = route.mode
        if mode == "hang":
            srv.release.wait(30)
            return
        if mode == "reset":
            return
        if mode == "garbage":
            sock.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            return
        if mode == "continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.05)
        if mode == "chunked":
            out = (status_line + ctype + "Transfer-Encoding: chunked\r\n\r\n").encode()
            for i in range(0, len(payload), 7):
                piece = payload[i:i + 7]
                out += b"%x\r\n%s\r\n" % (len(piece), piece)
            out += b"0\r\n\r\n"
            sock.sendall(out)
            return
        if mode == "close":
            sock.sendall((status_line + ctype + "Connection: close\r\n\r\n").encode() + payload)
            return
        head = (status_line + ctype + "Content-Length: %d\r\nConnection: close\r\n\r\n"
                % len(payload)).encode()
        if mode == "truncate":
            sock.sendall(head + payload[:len(payload) // 2])
            return
        out = head + payload
        if mode == "split":
            for i in range(0, len(out), 5):
                sock.sendall(out[i:i + 5])
                time.sleep(0.002)
            return
        sock.sendall(out)


class FakeAdmin:

    def __init__(self, path):
        self.path = path
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def route(self, method, path, body=None, **kw):
        with self.lock:
            self.routes[(method, path)] = Route(body, **kw)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Result:

    def __init__(self, cp):
        self.rc, self.out, self.err = cp.returncode, cp.stdout, cp.stderr

    def __repr__(self):
        return "rc=%r\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)


class ProxyctlTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pctl")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.admin = FakeAdmin(self.sock)

    def tearDown(self):
        self.admin.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --

    def run_ctl(self, *args, env=None, sock=True, timeout=20):
        e = {k: v for k, v in os.environ.items() if k != "FRESHCACHE_ADMIN"}
        e["LC_ALL"] = "C.UTF-8"
        if env:
            e.update(env)
        argv = [PROXYCTL] + (["-s", self.sock] if sock else []) + list(args)
        cp = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)
        return Result(cp)

    def assertExit(self, r, rc):
        self.assertEqual(r.rc, rc, r)

    def last(self):
        with self.admin.lock:
            return self.admin.requests[-1]

    def reqs(self):
        with self.admin.lock:
            return list(self.admin.requests)

    def assertUsage(self, r, fragment=None):
        self.assertExit(r, 2)
        self.assertEqual(r.out, "", r)
        self.assertIn("Usage: proxyctl", r.err, r)
        self.assertTrue(r.err.startswith("proxyctl: "), r)
        if fragment:
            self.assertIn(fragment, r.err, r)
        self.assertEqual(self.reqs(), [], "a usage error must not reach the daemon")

    # -- the request on the wire --

    def test_request_format(self):
        self.admin.route("POST", "/purge", {"purged": 1})
        r = self.run_ctl("purge", "/a?b=c")
        self.assertExit(r, 0)
        q = self.last()
        self.assertEqual(q["version"], "HTTP/1.1")
        self.assertEqual(q["method"], "POST")
        self.assertEqual(q["path"], "/purge")
        self.assertEqual(q["headers"].get("host"), "localhost")
        self.assertEqual(q["headers"].get("content-type"), "application/json")
        self.assertEqual(q["headers"].get("connection"), "close")
        self.assertEqual(int(q["headers"]["content-length"]), len(q["body"]))
        self.assertEqual(q["json"], {"url": "/a?b=c"})

    def test_get_has_no_body(self):
        self.admin.route("GET", "/generation", {"generation": 3})
        self.assertExit(self.run_ctl("generation"), 0)
        q = self.last()
        self.assertEqual((q["method"], q["path"], q["body"]), ("GET", "/generation", b""))
        self.assertEqual(q["headers"].get("host"), "localhost")

    # -- purge --generation --

    def test_purge_generation(self):
        self.admin.route("POST", "/purge/generation", {"generation": 8, "previous": 7})
        r = self.run_ctl("purge", "--generation")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 8 (was 7)\n")
        self.assertEqual(r.err, "")
        q = self.last()
        self.assertEqual((q["method"], q["path"]), ("POST", "/purge/generation"))
        self.assertEqual(q["body"], b"", "no body without --policy")

    def test_purge_generation_policy(self):
        self.admin.route("POST", "/purge/generation", {"generation": 3, "previous": 2})
        for args in (["--generation", "--policy", "html"], ["--policy=html", "--generation"]):
            r = self.run_ctl("purge", *args)
            self.assertExit(r, 0)
            self.assertEqual(r.out, "policy html generation 3 (was 2)\n")
            self.assertEqual(self.last()["json"], {"policy": "html"})

    def test_purge_generation_unknown_policy(self):
        self.admin.route("POST", "/purge/generation", {"error": "no policy named 'htm'"},
                         status=404)
        r = self.run_ctl("purge", "--generation", "--policy", "htm")
        self.assertExit(r, 1)
        self.assertEqual(r.out, "")
        self.assertEqual(r.err, "proxyctl: no policy named 'htm'\n")

    def test_purge_generation_json(self):
        answer = {"generation": 8, "previous": 7}
        self.admin.route("POST", "/purge/generation", answer)
        r = self.run_ctl("--json", "purge", "--generation")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), answer)
        self.assertEqual(r.out, json.dumps(answer) + "\n", "the daemon's bytes, unchanged")

    def test_json_passes_the_answer_through(self):
        # whatever the daemon's spacing and key order, --json prints its
        # bytes as they came (a newline added only when missing)
        raw = '{ "previous":7,\n  "generation" : 8 }'
        self.admin.route("POST", "/purge/generation", raw)
        r = self.run_ctl("--json", "purge", "--generation")
        self.assertExit(r, 0)
        self.assertEqual(r.out, raw + "\n")
        self.admin.route("GET", "/stats", '{"hits":1,"misses":2}\n')
        r = self.run_ctl("stats", "--json")
        self.assertEqual(r.out, '{"hits":1,"misses":2}\n')
        self.admin.route("POST", "/purge", '{"purged":3}')
        r = self.run_ctl("--json", "purge", "--prefix", "/s/")
        self.assertEqual(r.out, '{"purged":3}\n')
        r = self.run_ctl("--json", "purge", "/a")
        self.assertEqual(r.out, '{"purged":3}\n')
        # several purges: their answers in one array, on one line
        r = self.run_ctl("--json", "purge", "/a", "/b")
        self.assertEqual(r.out, '[{"purged": 3}, {"purged": 3}]\n')
        # failures too
        self.admin.route("POST", "/reload", '{"ok":false,"error":"f:1:1: x"}', status=422)
        r = self.run_ctl("--json", "reload")
        self.assertExit(r, 1)
        self.assertEqual(r.out, '{"ok":false,"error":"f:1:1: x"}\n')

    # -- purge URLs, prefix, tag --

    def test_purge_one_path(self):
        self.admin.route("POST", "/purge", {"purged": 2})
        r = self.run_ctl("purge", "/index.html")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "purged 2\n")
        self.assertEqual(self.last()["json"], {"url": "/index.html"})

    def test_purge_many_paths(self):
        counts = {"/a": 1, "/b": 0, "/c": 3}
        self.admin.route("POST", "/purge", lambda q: {"purged": counts[q["json"]["url"]]})
        r = self.run_ctl("purge", "/a", "/b", "/c")
        self.assertExit(r, 0)
        self.assertEqual(r.out.splitlines(),
                         ["purged 1  /a", "purged 0  /b", "purged 3  /c", "purged 4  in total"])
        self.assertEqual([q["json"] for q in self.reqs()],
                         [{"url": "/a"}, {"url": "/b"}, {"url": "/c"}])

    def test_purge_many_paths_json(self):
        counts = {"/a": 1, "/b": 2}
        self.admin.route("POST", "/purge", lambda q: {"purged": counts[q["json"]["url"]]})
        r = self.run_ctl("purge", "--json", "/a", "/b")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), [{"purged": 1}, {"purged": 2}])
        r = self.run_ctl("--json", "purge", "/a")
        self.assertEqual(json.loads(r.out), {"purged": 1})

    def test_purge_path_failure_goes_on(self):
        def answer(q):
            if q["json"]["url"] == "bad":
                return {"error": "not a path: bad"}
            return {"purged": 1}
        # the failing one says "error" even with a 200: still a failure
        self.admin.route("POST", "/purge", answer)
        r = self.run_ctl("purge", "/a", "bad", "/c")
        self.assertExit(r, 1)
        self.assertEqual(len(self.reqs()), 3, "the other paths are still purged")
        self.assertEqual(r.out.splitlines(),
                         ["purged 1  /a", "purged 1  /c", "purged 2  in total"])
        self.assertIn("proxyctl: not a path: bad\n", r.err)
        self.assertIn("bad was not purged", r.err)

    def test_purge_path_400(self):
        self.admin.route("POST", "/purge", lambda q: {"error": "not a path: " + q["json"]["url"]},
                         status=400)
        r = self.run_ctl("purge", "bad")
        self.assertExit(r, 1)
        self.assertEqual(r.err, "proxyctl: not a path: bad\n")
        self.assertEqual(r.out, "")

    def test_purge_soft(self):
        self.admin.route("POST", "/purge", {"purged": 5})
        r = self.run_ctl("purge", "--soft", "/a")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "purged 5\n")
        self.assertEqual(self.last()["json"], {"url": "/a", "soft": True})
        r = self.run_ctl("purge", "/b", "--soft")
        self.assertEqual(self.last()["json"], {"url": "/b", "soft": True})

    def test_purge_prefix(self):
        self.admin.route("POST", "/purge", {"purged": 12})
        r = self.run_ctl("purge", "--prefix", "/static/")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "purged 12\n")
        self.assertEqual(self.last()["json"], {"prefix": "/static/"})
        r = self.run_ctl("purge", "--soft", "--prefix=/img/")
        self.assertExit(r, 0)
        self.assertEqual(self.last()["json"], {"prefix": "/img/", "soft": True})

    def test_purge_tag(self):
        self.admin.route("POST", "/purge", {"purged": 4})
        r = self.run_ctl("purge", "--tag", "product-42")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "purged 4\n")
        self.assertEqual(self.last()["json"], {"tag": "product-42"})
        r = self.run_ctl("purge", "--tag", "t", "--soft", "--json")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), {"purged": 4})
        self.assertEqual(self.last()["json"], {"tag": "t", "soft": True})

    def test_purge_path_after_double_dash(self):
        self.admin.route("POST", "/purge", {"purged": 0})
        r = self.run_ctl("purge", "--", "--weird")
        self.assertExit(r, 0)
        self.assertEqual(self.last()["json"], {"url": "--weird"})

    def test_purge_usage_errors(self):
        cases = [
            ([], "purge"),
            (["--soft"], "purge"),
            (["--policy", "html"], "--policy"),
            (["--generation", "/a"], "only one"),
            (["--generation", "--soft"], "--soft"),
            (["--prefix", "/a", "--tag", "t"], "only one"),
            (["--prefix"], "'--prefix' needs an argument"),
            (["--tag"], "'--tag' needs an argument"),
            (["--generation", "--policy"], "'--policy' needs an argument"),
            (["--bogus", "/a"], "unknown option '--bogus'"),
            (["--prefix", ""], "empty"),
        ]
        for args, fragment in cases:
            with self.subTest(args=args):
                self.assertUsage(self.run_ctl("purge", *args), fragment)

    # -- generation --

    def test_generation(self):
        self.admin.route("GET", "/generation", {"generation": 42})
        r = self.run_ctl("generation")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 42\n")
        self.assertEqual(r.err, "")

    def test_generation_policies(self):
        answer = {"generation": 42, "policies": {"hashed-assets": 1, "html": 7, "default": 2}}
        self.admin.route("GET", "/generation", answer)
        r = self.run_ctl("generation")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 42\n"
                                "policy hashed-assets generation 1\n"
                                "policy html generation 7\n"
                                "policy default generation 2\n")
        self.assertEqual(r.err, "")
        r = self.run_ctl("--json", "generation")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), answer)
        # members it does not understand are skipped, not fatal
        self.admin.route("GET", "/generation", {"generation": 3, "policies": {"a": "x", "b": 2}})
        r = self.run_ctl("generation")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 3\npolicy b generation 2\n")

    def test_generation_json(self):
        self.admin.route("GET", "/generation", {"generation": 42})
        r = self.run_ctl("generation", "--json")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), {"generation": 42})

    def test_generation_usage(self):
        self.assertUsage(self.run_ctl("generation", "7"), "no arguments")

    # -- stats --

    STATS = {"requests": 1000, "hits": 750, "misses": 250, "revalidations": 30, "stale": 4,
             "objects": 123, "bytes": 1572864, "max_bytes": 268435456, "generation": 9,
             "uptime": 93784, "origin_errors": 2, "connections": 17}

    def test_stats_table(self):
        self.admin.route("GET", "/stats", self.STATS)
        r = self.run_ctl("stats")
        self.assertExit(r, 0)
        self.assertEqual(r.err, "")
        rows = {}
        lines = r.out.splitlines()
        for line in lines:
            label, _, value = line.partition("  ")
            rows[label.strip()] = value.strip()
        self.assertEqual(rows["hits"], "750")
        self.assertEqual(rows["misses"], "250")
        self.assertEqual(rows["hit ratio"], "75.0%")
        self.assertEqual(rows["revalidations"], "30")
        self.assertEqual(rows["stale"], "4")
        self.assertEqual(rows["objects"], "123")
        self.assertEqual(rows["generation"], "9")
        self.assertTrue(rows["bytes"].startswith("1.5 MiB"), rows)
        self.assertTrue(rows["max bytes"].startswith("256.0 MiB"), rows)
        self.assertTrue(rows["uptime"].startswith("1d 2h 3m 4s"), rows)
        self.assertEqual(rows["origin errors"], "2", "keys beyond the known ones are shown")
        self.assertEqual(rows["connections"], "17")
        # aligned: every value starts in the same column
        cols = {len(line) - len(line[len(line.split("  ")[0]):].lstrip()) for line in lines}
        self.assertEqual(len(cols), 1, r.out)
        # the generation and uptime come first, the hit ratio right after misses
        labels = [line.split("  ")[0].strip() for line in lines]
        self.assertEqual(labels[:2], ["generation", "uptime"])
        self.assertEqual(labels.index("hit ratio"), labels.index("misses") + 1)

    def test_stats_no_traffic_and_nested(self):
        self.admin.route("GET", "/stats", {"counters": {"hits": 0, "misses": 0},
                                           "uptime_seconds": 5, "generation": 1})
        r = self.run_ctl("stats")
        self.assertExit(r, 0)
        self.assertIn("hit ratio", r.out)
        self.assertRegex(r.out, r"(?m)^uptime\s+5s$")
        self.assertRegex(r.out, r"(?m)^hit ratio\s+-$")
        self.assertRegex(r.out, r"(?m)^hits\s+0$", "known counters one level down")

    def test_stats_json(self):
        self.admin.route("GET", "/stats", self.STATS)
        r = self.run_ctl("--json", "stats")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), self.STATS)
        # key order as the daemon sent it
        self.assertEqual(list(json.loads(r.out)), list(self.STATS))

    def test_stats_usage(self):
        self.assertUsage(self.run_ctl("stats", "--all"), "no arguments")

    # -- reload --

    def test_reload_ok(self):
        self.admin.route("POST", "/reload", {"ok": True})
        r = self.run_ctl("reload")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "reload OK\n")
        self.assertEqual((self.last()["method"], self.last()["path"]), ("POST", "/reload"))

    def test_reload_restart_required(self):
        # applied, except what needs a restart: a warning line each, exit 0
        self.admin.route("POST", "/reload", {"ok": True,
                                             "restart_required": ["workers", "cache.memory"]})
        r = self.run_ctl("reload")
        self.assertExit(r, 0)
        self.assertEqual(r.out, "reload OK\n")
        self.assertEqual(r.err, "proxyctl: warning: workers changed; takes effect on restart\n"
                                "proxyctl: warning: cache.memory changed; takes effect on "
                                "restart\n")
        self.admin.route("POST", "/reload", {"ok": True, "restart_required": []})
        r = self.run_ctl("reload")
        self.assertExit(r, 0)
        self.assertEqual((r.out, r.err), ("reload OK\n", ""))
        # with --json the answer, and still the warnings on stderr
        self.admin.route("POST", "/reload", {"ok": True, "restart_required": ["workers"]})
        r = self.run_ctl("--json", "reload")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), {"ok": True, "restart_required": ["workers"]})
        self.assertIn("warning: workers changed", r.err)

    def test_reload_rejected(self):
        line = "/etc/freshcache/freshcache.yaml:12:5: unknown key 'tll'"
        for status in (200, 400, 409):
            with self.subTest(status=status):
                self.admin.route("POST", "/reload", {"ok": False, "error": line}, status=status)
                r = self.run_ctl("reload")
                self.assertExit(r, 1)
                self.assertEqual(r.out, "")
                self.assertEqual(r.err, line + "\n")

    def test_reload_json(self):
        answer = {"ok": False, "error": "f.yaml:1:1: bad"}
        self.admin.route("POST", "/reload", answer, status=400)
        r = self.run_ctl("--json", "reload")
        self.assertExit(r, 1)
        self.assertEqual(json.loads(r.out), answer)
        self.admin.route("POST", "/reload", {"ok": True})
        r = self.run_ctl("--json", "reload")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.out), {"ok": True})

    # -- verify --

    def verify_answer(self, q):
        out = []
        for u in q["json"]["urls"]:
            if u == "/app.js":
                out.append({"url": u, "proxy_sha256": HEX_A, "origin_sha256": HEX_A,
                            "origin_status": 200, "stale": False})
            elif u == "/":
                out.append({"url": u, "proxy_sha256": HEX_B, "origin_sha256": HEX_C,
                            "origin_status": 200, "stale": True})
            elif u == "/gone":
                out.append({"url": u, "proxy_sha256": HEX_A, "origin_sha256": HEX_B,
                            "origin_status": 404, "stored": True, "stale": True})
            elif u == "/was-404":
                out.append({"url": u, "proxy_sha256": HEX_A, "origin_sha256": HEX_A,
                            "proxy_status": 404, "origin_status": 200, "stored": True,
                            "stale": True})
            elif u == "/still-404":
                out.append({"url": u, "proxy_sha256": HEX_A, "origin_sha256": HEX_A,
                            "proxy_status": 404, "origin_status": 404, "stored": True,
                            "stale": False})
            elif u == "/down":
                out.append({"url": u, "proxy_sha256": HEX_A, "origin_sha256": "",
                            "origin_status": 0, "stale": False})
            else:
                out.append({"url": u, "proxy_sha256": "", "origin_sha256": HEX_A,
                            "origin_status": 200, "stale": False})
        return {"results": out}

    def test_verify_all_fresh(self):
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("verify", "/app.js", "/x")
        self.assertExit(r, 0)
        self.assertEqual(self.last()["json"], {"urls": ["/app.js", "/x"]})
        lines = r.out.splitlines()
        self.assertEqual(len(lines), 2, r)
        self.assertRegex(lines[0], r"^fresh\s+/app\.js\s+sha256:abababab" + ELLIPSIS + "$")
        self.assertRegex(lines[1], r"^missing\s+/x\s+\(not in cache\)$")

    def test_verify_stale(self):
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("verify", "/app.js", "/", "/x")
        self.assertExit(r, 1)
        lines = r.out.splitlines()
        self.assertRegex(lines[1], r"^STALE\s+/\s+proxy sha256:cdcdcdcd" + ELLIPSIS +
                         r" origin sha256:01234567" + ELLIPSIS + "$")
        self.assertTrue(lines[0].startswith("fresh"))
        self.assertTrue(lines[2].startswith("missing"))
        # the paths line up
        self.assertEqual(len({line.index("/") for line in lines}), 1, r.out)

    def test_verify_stale_origin_status(self):
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("verify", "/gone")
        self.assertExit(r, 1)
        self.assertRegex(r.out, r"^STALE\s+/gone\s+proxy sha256:abababab.*\(origin answered 404\)$")
        self.assertIn("stale content", r.err)

    def test_verify_status_differs(self):
        # a stored 404 the origin now serves: the statuses say why
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("verify", "/was-404")
        self.assertExit(r, 1)
        self.assertRegex(r.out, r"^STALE\s+/was-404\s+proxy 404 sha256:abababab" + ELLIPSIS +
                         r" origin 200 sha256:abababab" + ELLIPSIS + "$")
        # a stored 404 that is still the origin's answer is fresh, and says 404
        r = self.run_ctl("verify", "/still-404")
        self.assertExit(r, 0)
        self.assertRegex(r.out, r"^fresh\s+/still-404\s+404 sha256:abababab" + ELLIPSIS + "$")

    def test_verify_origin_down(self):
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("verify", "/down")
        self.assertExit(r, 1)
        self.assertRegex(r.out, r"^error\s+/down\s+.*origin unreachable")

    def test_verify_json(self):
        self.admin.route("POST", "/verify", self.verify_answer)
        r = self.run_ctl("--json", "verify", "/", "/app.js")
        self.assertExit(r, 1)
        self.assertEqual(json.loads(r.out),
                         self.verify_answer({"json": {"urls": ["/", "/app.js"]}}))
        r = self.run_ctl("--json", "verify", "/app.js")
        self.assertExit(r, 0)

    def test_verify_other_shapes(self):
        # a bare array, "path", null hashes, "sha256:" prefixes
        self.admin.route("POST", "/verify", [
            {"path": "/a", "proxy_sha256": "sha256:" + HEX_A, "origin_sha256": "sha256:" + HEX_A,
             "stale": False},
            {"path": "/b", "proxy_sha256": None, "origin_sha256": HEX_A, "stale": False}])
        r = self.run_ctl("verify", "/a", "/b")
        self.assertExit(r, 0)
        self.assertRegex(r.out, r"(?m)^fresh\s+/a\s+sha256:abababab" + ELLIPSIS + "$")
        self.assertRegex(r.out, r"(?m)^missing\s+/b\s+\(not in cache\)$")
        # an object keyed by URL
        self.admin.route("POST", "/verify", {
            "/c": {"proxy_sha256": HEX_A, "origin_sha256": HEX_B, "stale": True}})
        r = self.run_ctl("verify", "/c")
        self.assertExit(r, 1)
        self.assertRegex(r.out, r"^STALE\s+/c\s+proxy sha256:abababab")

    def test_verify_usage(self):
        self.assertUsage(self.run_ctl("verify"), "PATH")
        self.assertUsage(self.run_ctl("verify", "--deep", "/"), "unknown option")

    def test_verify_slow_daemon_within_timeout(self):
        self.admin.route("POST", "/verify", self.verify_answer, mode="split")
        r = self.run_ctl("verify", "/app.js")
        self.assertExit(r, 0)
        self.assertTrue(r.out.startswith("fresh"), r)

    # -- daemon errors and odd answers --

    def test_error_field(self):
        self.admin.route("GET", "/generation", {"error": "state_dir is read-only"}, status=500)
        r = self.run_ctl("generation")
        self.assertExit(r, 1)
        self.assertEqual(r.out, "")
        self.assertEqual(r.err, "proxyctl: state_dir is read-only\n")

    def test_error_json_mode(self):
        body = {"error": "state_dir is read-only"}
        self.admin.route("GET", "/generation", body, status=500)
        r = self.run_ctl("--json", "generation")
        self.assertExit(r, 1)
        self.assertEqual(json.loads(r.out), body)
        self.assertIn("state_dir is read-only", r.err)

    def test_ok_false_is_failure(self):
        self.admin.route("POST", "/purge", {"ok": False, "error": "purge refused"})
        r = self.run_ctl("purge", "/a")
        self.assertExit(r, 1)
        self.assertEqual(r.err, "proxyctl: purge refused\n")

    def test_non_json_error(self):
        self.admin.route("GET", "/stats", "upstream exploded\n", status=502,
                         content_type="text/plain")
        r = self.run_ctl("stats")
        self.assertExit(r, 1)
        self.assertIn("502", r.err)
        self.assertIn("upstream exploded", r.err)
        r = self.run_ctl("--json", "stats")
        self.assertExit(r, 1)
        self.assertEqual(r.out, "upstream exploded\n")

    def test_unknown_endpoint(self):
        # an older daemon without /verify: the fake's 404 {"error": ...}
        r = self.run_ctl("verify", "/")
        self.assertExit(r, 1)
        self.assertIn("proxyctl: no such endpoint", r.err)

    def test_unexpected_answer(self):
        self.admin.route("GET", "/generation", {"gen": 1})
        r = self.run_ctl("generation")
        self.assertExit(r, 1)
        self.assertIn("unexpected answer", r.err)

    def test_framings(self):
        for mode in ("chunked", "close", "split", "continue"):
            with self.subTest(mode=mode):
                self.admin.route("GET", "/generation", {"generation": 77}, mode=mode)
                r = self.run_ctl("generation")
                self.assertExit(r, 0)
                self.assertEqual(r.out, "generation 77\n")

    def test_truncated_answer(self):
        self.admin.route("GET", "/stats", self.STATS, mode="truncate")
        r = self.run_ctl("stats")
        self.assertExit(r, 1)
        self.assertIn("closed the connection before the answer was complete", r.err)

    def test_no_answer(self):
        self.admin.route("POST", "/reload", None, mode="reset")
        r = self.run_ctl("reload")
        self.assertExit(r, 1)
        self.assertIn("closed the connection", r.err)

    def test_garbage_answer(self):
        self.admin.route("GET", "/stats", None, mode="garbage")
        r = self.run_ctl("stats")
        self.assertExit(r, 1)
        self.assertIn("malformed answer", r.err)

    def test_timeout(self):
        self.admin.route("POST", "/verify", None, mode="hang")
        t0 = time.monotonic()
        r = self.run_ctl("--timeout", "1", "verify", "/")
        elapsed = time.monotonic() - t0
        self.assertExit(r, 1)
        self.assertIn("timed out", r.err)
        self.assertIn(self.sock, r.err)
        self.assertLess(elapsed, 10)
        self.assertGreaterEqual(elapsed, 0.9)

    def test_bad_timeout(self):
        for v in ("0", "-1", "abc", "1s"):
            with self.subTest(v=v):
                self.assertUsage(self.run_ctl("-t", v, "stats"), "timeout")

    # -- socket selection and connect errors --

    def test_socket_flag_wins_over_env(self):
        self.admin.route("GET", "/generation", {"generation": 5})
        bogus = os.path.join(self.dir, "nope.sock")
        r = self.run_ctl("-s", self.sock, "generation", sock=False,
                         env={"FRESHCACHE_ADMIN": bogus})
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 5\n")
        for form in (["--socket", self.sock], ["--socket=" + self.sock], ["-s" + self.sock]):
            r = self.run_ctl(*form, "generation", sock=False, env={"FRESHCACHE_ADMIN": bogus})
            self.assertExit(r, 0)
        # and after the command too
        r = self.run_ctl("generation", "-s", self.sock, sock=False)
        self.assertExit(r, 0)

    def test_env_socket(self):
        self.admin.route("GET", "/generation", {"generation": 6})
        r = self.run_ctl("generation", sock=False, env={"FRESHCACHE_ADMIN": self.sock})
        self.assertExit(r, 0)
        self.assertEqual(r.out, "generation 6\n")
        bogus = os.path.join(self.dir, "nope.sock")
        r = self.run_ctl("generation", sock=False, env={"FRESHCACHE_ADMIN": bogus})
        self.assertExit(r, 3)
        self.assertIn(bogus, r.err)

    def test_default_socket(self):
        if os.path.exists(DEFAULT_SOCKET):
            self.skipTest(DEFAULT_SOCKET + " exists on this machine")
        r = self.run_ctl("generation", sock=False)
        self.assertExit(r, 3)
        self.assertEqual(r.err, "proxyctl: cannot connect to /run/freshcache/admin.sock: "
                         "No such file or directory \u2014 is freshcached running?\n")
        r = self.run_ctl("generation", sock=False, env={"FRESHCACHE_ADMIN": ""})
        self.assertExit(r, 3)
        self.assertIn(DEFAULT_SOCKET, r.err)

    def test_cannot_connect_missing(self):
        path = os.path.join(self.dir, "missing.sock")
        for cmd in (["generation"], ["purge", "--generation"], ["stats"], ["reload"],
                    ["verify", "/"], ["purge", "/a", "/b"], ["--json", "stats"]):
            with self.subTest(cmd=cmd):
                r = self.run_ctl("-s", path, *cmd, sock=False)
                self.assertExit(r, 3)
                self.assertEqual(r.out, "")
                self.assertEqual(r.err, "proxyctl: cannot connect to %s: No such file or "
                                 "directory \u2014 is freshcached running?\n" % path)

    def test_cannot_connect_refused(self):
        path = os.path.join(self.dir, "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()           # the file stays, nobody listens: a crashed daemon
        r = self.run_ctl("-s", path, "stats", sock=False)
        self.assertExit(r, 3)
        self.assertEqual(r.err, "proxyctl: cannot connect to %s: Connection refused "
                         "\u2014 is freshcached running?\n" % path)

    def test_connect_backlog_full(self):
        # a daemon that never accepts: its backlog fills, connect() must
        # not wait forever
        path = os.path.join(self.dir, "stuck.sock")
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(path)
        lst.listen(0)
        fillers = []
        try:
            while len(fillers) < 64:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(path)
                except (BlockingIOError, InterruptedError):
                    c.close()
                    break
                fillers.append(c)
            t0 = time.monotonic()
            r = self.run_ctl("-s", path, "-t", "0.5", "stats", sock=False)
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn(r.rc, (1, 3), r)
            self.assertIn(path, r.err)
        finally:
            for c in fillers:
                c.close()
            lst.close()

    def test_socket_path_too_long(self):
        path = "/tmp/" + "x" * 200 + ".sock"
        r = self.run_ctl("-s", path, "stats", sock=False)
        self.assertExit(r, 3)
        self.assertIn("cannot connect to " + path, r.err)

    # -- usage, help, version --

    def test_help(self):
        for flag in ("--help", "-h"):
            r = self.run_ctl(flag, sock=False)
            self.assertExit(r, 0)
            self.assertEqual(r.err, "")
            self.assertTrue(r.out.startswith("Usage: proxyctl [-s SOCKET] [--json] COMMAND"), r)
            for word in ("purge --generation", "--policy", "--prefix", "--tag", "--soft",
                         "generation", "stats", "reload", "verify", "FRESHCACHE_ADMIN",
                         DEFAULT_SOCKET):
                self.assertIn(word, r.out)
        r = self.run_ctl("purge", "--help", sock=False)
        self.assertExit(r, 0)
        self.assertIn("Usage:", r.out)
        self.assertEqual(self.reqs(), [])

    def test_version(self):
        r = self.run_ctl("--version", sock=False)
        self.assertExit(r, 0)
        self.assertRegex(r.out, r"^proxyctl \(freshcache\) \S+\n$")

    def test_usage_errors(self):
        self.assertUsage(self.run_ctl(), "no command")
        self.assertUsage(self.run_ctl("frobnicate"), "unknown command 'frobnicate'")
        self.assertUsage(self.run_ctl("--frob", "stats"), "unknown option '--frob'")
        self.assertUsage(self.run_ctl("-x", "stats"), "unknown option '-x'")
        self.assertUsage(self.run_ctl("-s", sock=False), "'-s' needs an argument")
        self.assertUsage(self.run_ctl("stats", "--socket", sock=False),
                         "'--socket' needs an argument")
        self.assertUsage(self.run_ctl("-s", "", "stats", sock=False), "empty socket")
        self.assertUsage(self.run_ctl("reload", "now"), "no arguments")

    def test_usage_wins_over_connect(self):
        # a usage error is reported as such even when the socket is missing
        r = self.run_ctl("-s", "/nonexistent/x.sock", "frobnicate", sock=False)
        self.assertExit(r, 2)


if __name__ == "__main__":
    if not PROXYCTL or not os.access(PROXYCTL, os.X_OK):
        sys.exit("test_proxyctl.py: set PROXYCTL to the proxyctl binary (got %r)" % PROXYCTL)
    unittest.main(verbosity=2)
