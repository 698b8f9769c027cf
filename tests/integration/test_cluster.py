#!/usr/bin/env python3
"""Fleets (issue 12): three freshcached nodes sharing generations and purges
through a real redis-server, started here on a free loopback port with its
own directory (never the system's Redis on 6379), and stopped at the end.

The scenarios of the issue: a deploy (same size, same mtime) purged on one
node, every node serving the new bytes the moment proxyctl returns; URL,
prefix, tag and policy purges reaching every node; a restarted node
rejoining at the cluster's generation; Redis killed (serving goes on, purge
exits 3 naming Redis); Redis back empty (no generation goes down, purges
work again); a frozen node (SIGSTOP) making purge exit 1 within ack_timeout,
naming it.  Also: a hung Redis, a node cut off from Redis (a relay the test
can cut) replaying what it missed and revalidating past max_disconnect,
GET /nodes and `proxyctl nodes`, metrics, a password (in a file, over a
Unix socket) that never reaches a log line.

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py), redis-server
and redis-cli (scripts/install-deps installs them)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROXYCTL = os.environ.get("PROXYCTL")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SITE = os.path.join(H.REPO, "examples", "site")
ACK_TIMEOUT_S = 1.0
CLUSTER = "it"

POLICIES = [
    {"name": "hashed-assets",
     "match": {"path": r"[.-][0-9a-f]{8,}\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$"},
     "ttl": "365d", "response_cache_control": "public, max-age=31536000, immutable"},
    {"name": "html", "match": {"content_type": ["text/html"]}, "ttl": "0s",
     "stale_if_error": "1h", "response_cache_control": "no-cache"},
    {"name": "default", "ttl": "origin"},
]


def wait_for(cond, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# redis-server, and a relay to cut one node off from it


class Redis:
    """A redis-server of our own: loopback port, its own directory, no
    persistence (so a restart comes back empty, like a crashed cache)."""

    def __init__(self, tmpdir, password=None, unixsocket=None):
        if not os.path.exists(REDIS_SERVER) or not os.path.exists(REDIS_CLI):
            raise RuntimeError("redis-server and redis-cli are needed (scripts/install-deps)")
        self.dir = os.path.join(tmpdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.password = password
        self.unixsocket = unixsocket
        self.port = None
        self.proc = None
        self.start()

    def start(self):
        for attempt in range(3):
            port = self.port or H.free_port()
            args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                    "--logfile", self.log_path]
            if self.password:
                args += ["--requirepass", self.password]
            if self.unixsocket:
                args += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            H._children.append(self.proc)
            try:
                H.wait_port(port, 10.0, self.proc, "redis-server")
                self.port = port
                wait_for(lambda: self.cli("PING") == "PONG", 5, "redis PING")
                return
            except RuntimeError:
                self.kill()
                if self.port is not None or attempt == 2:
                    raise
        raise RuntimeError("redis-server did not start")

    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def cli(self, *args):
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.password:
            cmd += ["-a", self.password]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10)
        return p.stdout.strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()            # SIGKILL ends a stopped process too
            self.proc.wait(5)
        if self.proc in H._children:
            H._children.remove(self.proc)

    def stop(self):
        rc, _ = H._stop_process(self.proc)
        return rc


class Relay:
    """TCP relay between one node and Redis.  cut() closes every connection
    and refuses new ones (a node cut off from Redis while the others are
    not); restore() lets connections through again."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.open = True
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.open = True

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


# ---------------------------------------------------------------------------
# the nodes


class Node:
    def __init__(self, name, tmp, origin_url, redis_url, cluster_extra=None, config_extra=None):
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.origin_url = origin_url
        self.redis_url = redis_url
        self.cluster_extra = cluster_extra or {}
        self.config_extra = config_extra or {}
        self.proxy = None
        self.start()

    def config(self):
        cfg = H.default_config(H.free_port(), self.origin_url, self.dir)
        cfg["log"]["level"] = "info"
        cfg["policies"] = POLICIES
        cfg["cluster"] = dict({"redis": self.redis_url, "name": CLUSTER, "node": self.name,
                               "ack_timeout": "%dms" % int(ACK_TIMEOUT_S * 1000)},
                              **self.cluster_extra)
        return H.deep_merge(cfg, self.config_extra)

    def start(self):
        for attempt in range(2):
            cfg = self.config() if self.proxy is None else self.proxy.config
            try:
                self.proxy = H.Proxy(cfg, self.dir)
                return
            except RuntimeError:
                if attempt == 1 or "Address already in use" not in H._tail(
                        os.path.join(self.dir, "freshcached.log"), 5):
                    raise
                self.proxy = None

    @property
    def port(self):
        return self.proxy.port

    @property
    def sock(self):
        return self.proxy.config["admin"]["socket"]

    def alive(self):
        return self.proxy.alive()

    def stop(self):
        """SIGTERM; the daemon must leave cleanly (exit 0: no sanitizer
        report either)."""
        self.proxy.send_cont()
        rc = self.proxy.stop()
        if rc != 0:
            raise AssertionError("%s exited with status %s:\n%s"
                                 % (self.name, rc, H._tail(self.proxy.log_path)))
        return rc

    def signal(self, sig):
        self.proxy.proc.send_signal(sig)

    def admin(self, method, path, body=None):
        return self.proxy.admin(method, path, body)

    def generation(self):
        status, body = self.admin("GET", "/generation")
        assert status == 200, (status, body)
        return body["generation"]

    def log(self):
        with open(self.proxy.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def _send_cont(self):
    if self.proc.poll() is None:
        self.proc.send_signal(signal.SIGCONT)


H.Proxy.send_cont = _send_cont


class ClusterBase(unittest.TestCase):
    """Redis, an origin serving a private copy of examples/site, and three
    nodes; the third reaches Redis through a Relay."""

    n_nodes = 3
    cluster_extra = {}

    @classmethod
    def setUpClass(cls):
        if not PROXYCTL or not os.path.exists(PROXYCTL):
            raise RuntimeError("PROXYCTL is not set to the proxyctl executable")
        if H.DIRECT:
            raise unittest.SkipTest("cluster tests need freshcached")
        cls.tmp = tempfile.mkdtemp(prefix="fc-cluster-")
        H._tmpdirs.append(cls.tmp)
        cls.addClassCleanup(cls._remove_tmp)
        cls.site = os.path.join(cls.tmp, "site")
        shutil.copytree(SITE, cls.site)
        cls.origin = H.Origin(cls.tmp, root=cls.site)
        cls.addClassCleanup(cls.origin.stop)
        cls.redis = Redis(cls.tmp)
        cls.addClassCleanup(cls.redis.kill)
        cls.relay = Relay(cls.redis.port)
        cls.addClassCleanup(cls.relay.close)
        cls.nodes = []
        cls.addClassCleanup(cls._stop_nodes)
        for i in range(cls.n_nodes):
            url = cls.redis.url()
            if i == 2:
                url = "redis://127.0.0.1:%d/0" % cls.relay.port
            cls.nodes.append(Node("edge-%d" % (i + 1), cls.tmp, cls.origin.url, url,
                                  cls.cluster_extra))

    @classmethod
    def _stop_nodes(cls):
        errors = []
        for n in cls.nodes:
            if n.alive():
                try:
                    n.stop()
                except AssertionError as e:
                    errors.append(str(e))
            tail = H._tail(n.proxy.log_path, 30)
            if tail.strip() and os.environ.get("FRESHCACHE_TEST_VERBOSE") == "1":
                sys.stderr.write("--- %s ---\n%s\n" % (n.name, tail))
        if errors:
            raise AssertionError("\n".join(errors))

    @classmethod
    def _remove_tmp(cls):
        if H.KEEP:
            sys.stderr.write("kept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        # Each test starts from a healthy cluster, whatever the last one did.
        if not self.redis.alive():
            self.redis.start()
        self.relay.restore()
        for n in self.nodes:
            n.proxy.send_cont()
            if not n.alive():
                n.start()
        self.wait_cluster()
        wait_for(lambda: len(set(self.generations())) == 1, 10, "the nodes to agree")
        self.origin.reset()

    def tearDown(self):
        for n in self.nodes:
            n.proxy.send_cont()
        dead = [n for n in self.nodes if not n.alive() and n.proxy.exit_status is None]
        if dead:
            self.fail("%s died:\n%s" % (dead[0].name, H._tail(dead[0].proxy.log_path)))

    # -- tools ------------------------------------------------------------------

    def wait_cluster(self, nodes=None, timeout=15):
        """Until every node answers /nodes listing all of them live."""
        nodes = nodes or self.nodes
        names = {n.name for n in self.nodes}

        def ready():
            for n in nodes:
                status, body = n.admin("GET", "/nodes")
                if status != 200:
                    return False
                live = {x["node"] for x in body["nodes"] if x["live"]}
                if not names <= live:
                    return False
            return True
        wait_for(ready, timeout, "the cluster to form")

    def proxyctl(self, node, *args, expect=0):
        p = subprocess.run([PROXYCTL, "-s", node.sock] + list(args), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        if expect is not None:
            self.assertEqual(p.returncode, expect, "proxyctl %s on %s: exit %d, expected %d\n"
                             "stdout: %r\nstderr: %r" % (" ".join(args), node.name, p.returncode,
                                                         expect, p.stdout, p.stderr))
        return p

    def get(self, node, target, headers=None):
        return H.request(node.port, "GET", target, headers)

    def generations(self):
        return [n.generation() for n in self.nodes]

    def cluster_generation(self):
        v = self.redis.cli("HGET", "freshcache:{%s}:gen" % CLUSTER, "global")
        return int(v) if v else 0

    def file(self, path):
        return os.path.join(self.site, "index.html" if path == "/" else path.lstrip("/"))

    def deploy_same_size_same_mtime(self, path, old, new):
        fn = self.file(path)
        st = os.stat(fn)
        self.assertEqual(len(new), len(old))
        with open(fn, "r+b") as f:
            f.write(new)
        os.utime(fn, ns=(st.st_atime_ns, st.st_mtime_ns))

    def stored_tagged(self, seed, tag="t"):
        """A /t/body URL cacheable for an hour, with an ETag, tagged `tag`."""
        return H.url("/t/body", size=100, seed=seed, cc="max-age=3600", etag=1,
                     hdr="Surrogate-Key:%s" % tag)

    def warm(self, target):
        for n in self.nodes:
            r = self.get(n, target)
            self.assertEqual(r.status, 200, r)
            r = self.get(n, target)
            self.assertTrue(r.cache_status.get("hit"), "%s: not a hit: %r" % (n.name, r))


# ---------------------------------------------------------------------------


class ClusterTest(ClusterBase):

    def test_deploy_purged_on_one_node_every_node_serves_new_bytes(self):
        with open(self.file("/"), "rb") as f:
            old = f.read()
        for n in self.nodes:
            r = self.get(n, "/")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, old)
        # The deploy keeps size and mtime: the origin's ETag does not change,
        # each node's revalidation gets a 304 and keeps the old page.
        self.assertIn(b">v1<", old)
        new = old.replace(b">v1<", b">v2<")
        self.deploy_same_size_same_mtime("/", old, new)
        try:
            for n in self.nodes:
                r = self.get(n, "/")
                self.assertEqual(r.body, old, "%s: %r" % (n.name, r))
                self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
            before = self.generations()
            self.assertEqual(len(set(before)), 1, before)
            p = self.proxyctl(self.nodes[0], "purge", "--generation")
            self.assertEqual(p.stdout, "generation %d (was %d), 3/3 nodes\n"
                             % (before[0] + 1, before[0]))
            self.assertEqual(p.stderr, "")
            # The moment proxyctl returned, every node serves the new bytes.
            for n in self.nodes:
                r = self.get(n, "/")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, new, "%s still serves the old page: %r" % (n.name, r))
                self.assertEqual(r.cache_status.get("fwd"), "miss", r)
            self.assertEqual(self.generations(), [before[0] + 1] * 3)
            self.assertEqual(self.cluster_generation(), before[0] + 1)
        finally:
            self.deploy_same_size_same_mtime("/", new, old)

    def test_purge_answer_json(self):
        status, body = self.nodes[1].admin("POST", "/purge/generation", {})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["generation"], body["previous"] + 1)
        self.assertEqual(body["nodes"], {"live": 3, "acked": 3, "missing": []})
        p = self.proxyctl(self.nodes[2], "--json", "purge", "--generation")
        got = json.loads(p.stdout)
        self.assertEqual(got["generation"], body["generation"] + 1)
        self.assertEqual(got["nodes"]["acked"], 3)

    def test_policy_generation_reaches_every_node(self):
        status, body = self.nodes[0].admin("POST", "/purge/generation", {"policy": "html"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["policy"], "html")
        self.assertEqual(body["nodes"]["acked"], 3)
        want = body["generation"]
        p = self.proxyctl(self.nodes[1], "purge", "--generation", "--policy", "html")
        self.assertEqual(p.stdout, "policy html generation %d (was %d), 3/3 nodes\n"
                         % (want + 1, want))
        self.assertEqual(self.redis.cli("HGET", "freshcache:{%s}:gen" % CLUSTER, "policy:html"),
                         str(want + 1))

        def reported():
            _, b = self.nodes[2].admin("GET", "/nodes")
            return all(x["policies"].get("html") == want + 1 for x in b["nodes"])
        wait_for(reported, 5, "every node to report html generation %d" % (want + 1))
        # an unknown policy is refused by the node asked, and nothing is sent
        p = self.proxyctl(self.nodes[0], "purge", "--generation", "--policy", "nope", expect=1)
        self.assertIn("unknown policy", p.stderr)

    def test_url_prefix_tag_purges_reach_every_node(self):
        seed = "u%x" % int(time.time() * 1000)
        a = self.stored_tagged(seed + "a", "ta")
        b = self.stored_tagged(seed + "b", "tb")
        path_a = a.split("?")[0]
        self.assertEqual(path_a, "/t/body")
        for target in (a, b):
            self.warm(target)

        # URL: asked of edge-2, gone from every node; "purged" sums the nodes
        p = self.proxyctl(self.nodes[1], "purge", a)
        self.assertEqual(p.stdout, "purged 3, 3/3 nodes\n")
        for n in self.nodes:
            r = self.get(n, a)
            self.assertEqual(r.cache_status.get("fwd"), "miss", "%s: %r" % (n.name, r))
            self.assertTrue(self.get(n, b).cache_status.get("hit"))

        # tag
        self.warm(a)
        status, body = self.nodes[2].admin("POST", "/purge", {"tag": "tb"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"purged": 3, "nodes": {"live": 3, "acked": 3, "missing": []}})
        for n in self.nodes:
            self.assertEqual(self.get(n, b).cache_status.get("fwd"), "miss")
            self.assertTrue(self.get(n, a).cache_status.get("hit"))

        # soft prefix: everything under /t/ revalidates on every node
        p = self.proxyctl(self.nodes[0], "purge", "--soft", "--prefix", "/t/")
        self.assertRegex(p.stdout, r"^purged \d+, 3/3 nodes\n$")
        for n in self.nodes:
            r = self.get(n, a)
            self.assertEqual(r.cache_status.get("fwd"), "stale", "%s: %r" % (n.name, r))

        # the peers logged what they applied, with where it came from
        self.assertRegex(self.nodes[0].log(), r'hard purge of url "/t/body\?[^"]*" \(1 object\) '
                                              r'from edge-2 applied')

    def test_restarted_node_rejoins_at_cluster_generation(self):
        c = self.nodes[2]
        c.stop()
        # While edge-3 is away (it left cleanly): purges count 2/2.
        p = self.proxyctl(self.nodes[0], "purge", "--generation")
        self.assertRegex(p.stdout, r", 2/2 nodes\n$")
        p = self.proxyctl(self.nodes[1], "purge", "--generation")
        want = self.cluster_generation()
        c.start()
        wait_for(lambda: c.generation() == want, 10, "edge-3 to catch up to %d" % want)
        self.wait_cluster()
        p = self.proxyctl(c, "purge", "--generation")
        self.assertEqual(p.stdout, "generation %d (was %d), 3/3 nodes\n" % (want + 1, want))
        self.assertEqual(self.generations(), [want + 1] * 3)

    def test_crashed_node_rejoins(self):
        c = self.nodes[2]
        c.signal(signal.SIGKILL)
        c.proxy.proc.wait(5)
        # Within the liveness window it still counts as live, so a purge
        # names it; then it is no longer live.
        p = self.proxyctl(self.nodes[0], "purge", "--generation", expect=1)
        self.assertIn("edge-3", p.stderr)
        want = self.cluster_generation()
        c.start()
        # Its name is held by the crashed process until that one is no
        # longer live: it joins after that and catches up.
        wait_for(lambda: c.generation() == want, 15, "edge-3 to catch up to %d" % want)
        self.wait_cluster()

    def test_redis_killed_serving_goes_on_purge_exits_3(self):
        target = self.stored_tagged("k%x" % int(time.time() * 1000))
        self.warm(target)
        before = self.generations()
        self.redis.kill()
        for n in self.nodes:
            r = self.get(n, target)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.cache_status.get("hit"), "%s: %r" % (n.name, r))
        p = self.proxyctl(self.nodes[0], "purge", "--generation", expect=3)
        self.assertEqual(p.stdout, "")
        self.assertIn("Redis at redis://127.0.0.1:%d/0" % self.redis.port, p.stderr)
        self.assertIn("nothing was purged", p.stderr)
        p = self.proxyctl(self.nodes[1], "purge", target, expect=3)
        self.assertIn("Redis", p.stderr)
        p = self.proxyctl(self.nodes[1], "nodes", expect=3)
        self.assertIn("Redis", p.stderr)
        status, body = self.nodes[0].admin("POST", "/purge", {"url": target})
        self.assertEqual(status, 503, body)
        # nothing was purged anywhere
        self.assertEqual(self.generations(), before)
        for n in self.nodes:
            self.assertTrue(self.get(n, target).cache_status.get("hit"))
            status, body = n.admin("GET", "/metrics")
            self.assertIn("freshcache_cluster_connected 0\n", body)

    def test_redis_back_empty_no_generation_goes_down(self):
        for i in range(3):
            self.proxyctl(self.nodes[i], "purge", "--generation")
        self.proxyctl(self.nodes[0], "purge", "--generation", "--policy", "html")
        before = self.generations()
        html = int(self.redis.cli("HGET", "freshcache:{%s}:gen" % CLUSTER, "policy:html"))
        self.redis.kill()
        self.redis.start()                  # same port, empty
        self.wait_cluster()
        self.assertEqual(self.generations(), before)
        # The nodes' floors went back into Redis when they rejoined...
        self.assertEqual(self.cluster_generation(), before[0])
        self.assertEqual(int(self.redis.cli("HGET", "freshcache:{%s}:gen" % CLUSTER,
                                            "policy:html")), html)
        # ...and purges work again, from the highest number ever seen.
        p = self.proxyctl(self.nodes[1], "purge", "--generation")
        self.assertEqual(p.stdout, "generation %d (was %d), 3/3 nodes\n"
                         % (before[0] + 1, before[0]))
        self.assertEqual(self.generations(), [before[0] + 1] * 3)

    def test_frozen_node_purge_exits_1_naming_it(self):
        frozen = self.nodes[1]
        frozen.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            p = self.proxyctl(self.nodes[0], "purge", "--generation", expect=1)
            elapsed = time.monotonic() - t0
            self.assertRegex(p.stdout, r"^generation \d+ \(was \d+\), 2/3 nodes\n$")
            self.assertIn("edge-2", p.stderr)
            self.assertNotIn("edge-3", p.stderr)
            self.assertGreaterEqual(elapsed, ACK_TIMEOUT_S * 0.9)
            self.assertLess(elapsed, ACK_TIMEOUT_S + 1.5)
            status, body = self.nodes[2].admin("POST", "/purge/generation")
            self.assertEqual(body["nodes"]["missing"], ["edge-2"])
            self.assertEqual(body["nodes"]["live"], 3)
            self.assertEqual(body["nodes"]["acked"], 2)
            want = body["generation"]
        finally:
            frozen.signal(signal.SIGCONT)
        # Thawed, it applies what it missed from the stream.
        wait_for(lambda: frozen.generation() == want, 5, "edge-2 to apply generation %d" % want)

    def test_stop_while_a_purge_waits(self):
        """SIGTERM on the purging node while it waits for a frozen peer: it
        stops cleanly (no leak, exit 0), the client sees the connection
        close without an answer."""
        frozen, a = self.nodes[1], self.nodes[0]

        def purges():
            text = a.admin("GET", "/metrics")[1]
            return int(re.search(r"^freshcache_purges_total (\d+)$", text, re.M).group(1))
        before = purges()
        frozen.signal(signal.SIGSTOP)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(a.sock)
            s.sendall(H.build_request("POST", "/purge/generation",
                                      [("Host", "localhost"), ("Content-Length", "0")],
                                      host=None))
            # the purge is out (edge-1's own feed applies it), waiting for edge-2
            wait_for(lambda: purges() == before + 1, 5, "the purge to be sent")
            time.sleep(0.1)
            a.stop()                        # asserts exit status 0
            self.assertEqual(s.recv(65536), b"")
            s.close()
        finally:
            frozen.signal(signal.SIGCONT)
        a.start()
        self.wait_cluster()

    def test_hung_redis_purge_exits_3_within_ack_timeout(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            p = self.proxyctl(self.nodes[0], "purge", "--generation", expect=3)
            elapsed = time.monotonic() - t0
            self.assertIn("did not answer", p.stderr)
            self.assertIn("Redis at", p.stderr)
            self.assertLess(elapsed, ACK_TIMEOUT_S + 1.5)
            # serving goes on
            r = self.get(self.nodes[1], "/logo.svg")
            self.assertEqual(r.status, 200)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)

    def test_redis_lost_while_a_purge_waits_for_it(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        p = subprocess.Popen([PROXYCTL, "-s", self.nodes[0].sock, "purge", "--generation"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(ACK_TIMEOUT_S / 3)
        self.redis.kill()                   # the connection resets under the purge
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 3, (out, err))
        self.assertIn("lost Redis at", err)
        self.assertIn("may or may not have been recorded", err)

    def test_redis_refusing_writes(self):
        self.redis.cli("CONFIG", "SET", "maxmemory", "1")
        try:
            p = self.proxyctl(self.nodes[0], "purge", "--generation", expect=None)
            # 1: Redis refused the script; 3 if a heartbeat was refused first
            # and the node is not in touch any more.  Either way, nothing.
            self.assertIn(p.returncode, (1, 3), p)
            if p.returncode == 1:
                self.assertIn("refused the purge: OOM", p.stderr)
            self.assertIn("nothing was purged", p.stderr)
        finally:
            self.redis.cli("CONFIG", "SET", "maxmemory", "0")

    def test_cut_off_node_replays_missed_purges(self):
        c = self.nodes[2]
        target = self.stored_tagged("r%x" % int(time.time() * 1000))
        self.warm(target)
        self.relay.cut()
        wait_for(lambda: "freshcache_cluster_connected 0\n" in c.admin("GET", "/metrics")[1], 5,
                 "edge-3 to notice")
        # edge-3 keeps serving; the purge does not reach it for now
        p = self.proxyctl(self.nodes[0], "purge", target, expect=None)
        self.assertIn(p.returncode, (0, 1), p.stderr)   # 1 while edge-3 still counts as live
        self.assertTrue(self.get(c, target).cache_status.get("hit"))
        self.assertEqual(self.get(self.nodes[1], target).cache_status.get("fwd"), "miss")
        self.relay.restore()
        # back in touch, it replays the stream and applies the purge
        wait_for(lambda: self.get(c, target).cache_status.get("fwd") == "miss", 10,
                 "edge-3 to apply the purge it missed")
        self.assertRegex(c.log(), r'hard purge of url "[^"]*" \(1 object\) from edge-1 applied')

    def test_nodes(self):
        status, body = self.nodes[0].admin("GET", "/nodes")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["cluster"], CLUSTER)
        self.assertEqual(body["node"], "edge-1")
        self.assertEqual(sorted(x["node"] for x in body["nodes"]), ["edge-1", "edge-2", "edge-3"])
        for x in body["nodes"]:
            self.assertIsInstance(x["generation"], int)
            self.assertIsInstance(x["last_seen_ms"], int)
            self.assertLess(x["last_seen_ms"], 3000)
            self.assertTrue(x["live"])
            self.assertEqual(x["self"], x["node"] == "edge-1")
        p = self.proxyctl(self.nodes[1], "nodes")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "cluster %s, this node edge-2" % CLUSTER)
        self.assertRegex(lines[1], r"^NODE\s+GENERATION\s+LAST SEEN\s+STATE$")
        self.assertEqual(len(lines), 5, p.stdout)
        for ln in lines[2:]:
            self.assertRegex(ln, r"^edge-\d\s+\d+\s+\d+\.\d s ago\s+live$")
        p = self.proxyctl(self.nodes[1], "--json", "nodes")
        self.assertEqual(json.loads(p.stdout)["cluster"], CLUSTER)

    def test_reload_does_not_move_cluster_settings(self):
        n = self.nodes[0]
        path = n.proxy.config_path
        with open(path) as f:
            orig = f.read()
        self.addCleanup(lambda: open(path, "w").write(orig))
        with open(path, "w") as f:
            f.write(orig.replace("node: edge-1", "node: edge-9"))
        self.proxyctl(n, "reload")
        wait_for(lambda: "they apply at the next restart" in n.log(), 5, "the warning")
        status, body = n.admin("GET", "/nodes")
        self.assertEqual(body["node"], "edge-1")
        with open(path, "w") as f:
            f.write(orig)
        self.proxyctl(n, "reload")

    def test_metrics(self):
        self.proxyctl(self.nodes[0], "purge", "--generation")
        status, text = self.nodes[1].admin("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("freshcache_cluster_connected 1\n", text)
        self.assertIn("freshcache_cluster_nodes_live 3\n", text)
        m = re.search(r"^freshcache_cluster_events_applied_total (\d+)$", text, re.M)
        self.assertTrue(m and int(m.group(1)) >= 1, text)
        m = re.search(r"^freshcache_cluster_purge_lag_seconds_count (\d+)$", text, re.M)
        self.assertTrue(m and int(m.group(1)) >= 1, text)
        self.assertIn('freshcache_cluster_purge_lag_seconds_bucket{le="+Inf"}', text)
        self.assertIn("freshcache_cluster_disconnects_total", text)
        self.assertIn("freshcache_cluster_catching_up 0\n", text)


class RevalidateOnDisconnectTest(ClusterBase):
    """max_disconnect 1s with on_disconnect: revalidate (the default)."""

    n_nodes = 3
    cluster_extra = {"max_disconnect": "1s"}

    def test_cut_off_past_max_disconnect_revalidates_until_caught_up(self):
        c = self.nodes[2]
        target = self.stored_tagged("v%x" % int(time.time() * 1000))
        self.warm(target)
        self.relay.cut()
        # within max_disconnect: served from the cache
        self.assertTrue(self.get(c, target).cache_status.get("hit"))
        wait_for(lambda: "freshcache_cluster_catching_up 1\n" in c.admin("GET", "/metrics")[1],
                 5, "edge-3 to start revalidating")
        r = self.get(c, target)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
        self.assertIn("revalidated with the origin until this node has caught up", c.log())
        # the others are not concerned
        self.assertTrue(self.get(self.nodes[0], target).cache_status.get("hit"))
        self.relay.restore()
        wait_for(lambda: "freshcache_cluster_catching_up 0\n" in c.admin("GET", "/metrics")[1],
                 10, "edge-3 to catch up")
        self.assertTrue(self.get(c, target).cache_status.get("hit"))
        self.assertIn("caught up; serving from the cache again", c.log())


class AuthUnixServeTest(unittest.TestCase):
    """A Redis with a password, reached over a Unix socket with the password
    in password_file and over TCP with it in the URL; on_disconnect: serve.
    The password never reaches a log line; a wrong one is refused."""

    PASSWORD = "s3cr3t-Pa55-%d" % os.getpid()

    @classmethod
    def setUpClass(cls):
        if not PROXYCTL or not os.path.exists(PROXYCTL) or H.DIRECT:
            raise unittest.SkipTest("needs freshcached and proxyctl")
        cls.tmp = tempfile.mkdtemp(prefix="fc-cluster-auth-")
        H._tmpdirs.append(cls.tmp)
        if not H.KEEP:
            cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.origin = H.Origin(cls.tmp)
        cls.addClassCleanup(cls.origin.stop)
        sock = os.path.join(cls.tmp, "redis.sock")
        cls.redis = Redis(cls.tmp, password=cls.PASSWORD, unixsocket=sock)
        cls.addClassCleanup(cls.redis.kill)
        pwfile = os.path.join(cls.tmp, "redis.pw")
        with open(pwfile, "w") as f:
            f.write(cls.PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        serve = {"on_disconnect": "serve", "max_disconnect": "500ms"}
        cls.a = Node("unix-1", cls.tmp, cls.origin.url, "unix://%s?db=3" % sock,
                     dict(serve, password_file=pwfile))
        cls.addClassCleanup(cls.a.stop)
        cls.b = Node("tcp-2", cls.tmp, cls.origin.url,
                     "redis://:%s@127.0.0.1:%d/3" % (cls.PASSWORD, cls.redis.port), serve)
        cls.addClassCleanup(cls.b.stop)

    def proxyctl(self, node, *args, expect=0):
        p = subprocess.run([PROXYCTL, "-s", node.sock] + list(args), capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, expect, p)
        return p

    def test_password_unix_socket_and_database(self):
        def both():
            s, body = self.a.admin("GET", "/nodes")
            return s == 200 and sum(x["live"] for x in body["nodes"]) == 2
        wait_for(both, 10, "both nodes to join")
        p = self.proxyctl(self.a, "purge", "--generation")
        self.assertRegex(p.stdout, r", 2/2 nodes\n$")
        # the cluster's keys are in database 3, which both selected
        self.assertEqual(self.redis.cli("-n", "3", "HGET", "freshcache:{%s}:gen" % CLUSTER,
                                        "global"), str(self.b.generation()))
        self.assertIn("redis://:***@127.0.0.1:%d/3" % self.redis.port, self.b.log())
        self.assertIn("unix://:***@", self.a.log())

    def test_database_refused(self):
        bad = Node("db-4", self.tmp, self.origin.url,
                   "redis://:%s@127.0.0.1:%d/99" % (self.PASSWORD, self.redis.port))
        try:
            wait_for(lambda: "SELECT refused" in bad.log(), 5, "the refusal in the log")
            p = self.proxyctl(bad, "purge", "/x", expect=3)
            self.assertIn("SELECT refused", p.stderr)
        finally:
            bad.stop()

    def test_wrong_password_refused_never_logged(self):
        bad = Node("bad-3", self.tmp, self.origin.url,
                   "redis://:wrong-%s@127.0.0.1:%d/3" % (self.PASSWORD, self.redis.port))
        try:
            wait_for(lambda: "AUTH refused" in bad.log(), 5, "the refusal in the log")
            p = self.proxyctl(bad, "purge", "--generation", expect=3)
            self.assertIn("AUTH refused", p.stderr)
            self.assertNotIn(self.PASSWORD, p.stderr)
        finally:
            bad.stop()
        for n in (self.a, self.b, bad):
            self.assertNotIn(self.PASSWORD, n.log(), n.name)
        with open(os.path.join(self.tmp, "bad-3", "freshcache.yaml")) as f:
            self.assertIn(self.PASSWORD, f.read())     # it was there to leak

    def test_serve_keeps_serving_from_cache_when_cut_off(self):
        target = H.url("/t/body", size=10, seed="serve%d" % time.time(), cc="max-age=3600")
        for n in (self.a, self.b):
            H.request(n.port, "GET", target)
            self.assertTrue(H.request(n.port, "GET", target).cache_status.get("hit"))
        self.redis.kill()
        try:
            time.sleep(1.0)         # past max_disconnect
            for n in (self.a, self.b):
                self.assertTrue(H.request(n.port, "GET", target).cache_status.get("hit"))
                self.assertIn("freshcache_cluster_catching_up 0\n", n.admin("GET", "/metrics")[1])
        finally:
            self.redis.start()


class ConfigTest(unittest.TestCase):

    def test_check_config_cluster_errors(self):
        tmp = tempfile.mkdtemp(prefix="fc-cluster-cfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write("origin:\n  url: http://127.0.0.1:8000\ncluster:\n"
                    "  redis: redis://:hunter2@127.0.0.1:99999/0\n  on_disconnect: maybe\n")
        p = subprocess.run([H.FRESHCACHED, "-t", "-c", path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.splitlines(), [
            "%s:4:10: cluster.redis: invalid Redis address: the port must be a number from 1 to "
            "65535 (use e.g. redis://127.0.0.1:6379/0 or unix:///run/redis/redis.sock)" % path,
            "%s:5:18: cluster.on_disconnect: invalid value \"maybe\" (expected revalidate or "
            "serve)" % path,
        ])
        self.assertNotIn("hunter2", p.stderr + p.stdout)


class NoClusterTest(H.ProxyTestCase):

    def test_nodes_without_cluster(self):
        status, body = self.proxy.admin("GET", "/nodes")
        self.assertEqual(status, 404)
        self.assertIn("not in a cluster", body["error"])
        p = subprocess.run([PROXYCTL, "-s", self.proxy.config["admin"]["socket"], "nodes"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        # and purges answer as before, without "nodes"
        status, body = self.proxy.admin("POST", "/purge/generation")
        self.assertEqual(sorted(body), ["generation", "previous"])


if __name__ == "__main__":
    H.main()
