#!/usr/bin/env python3
"""`proxyctl top` (issue 16) and the time of the last generation bump.

- `top --once` against a running freshcached under traffic: one plain
  frame, rates per second from two samples a second apart, the outcome
  breakdown, origin latency percentiles, memory against the bound, the
  generation and when it was last bumped.
- `last_bump` in GET /stats and freshcache_generation_changed_timestamp_seconds
  in GET /metrics follow a bump.
- The live view under a pseudo-terminal: frames refresh every second, `q`
  quits with status 0 and the terminal is given back; a daemon that goes
  away is reported in the status line and picked up again when it returns
  (a fake admin socket stands in for it).
- Errors: no daemon (exit 3), an answer that is not Prometheus text or not
  200 (exit 1), unknown arguments and --json (exit 2), no terminal (exit 2).

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py)."""

import fcntl
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import url  # noqa: E402

PROXYCTL = os.environ.get("PROXYCTL")
if PROXYCTL:
    PROXYCTL = os.path.abspath(PROXYCTL)


def run_proxyctl(*args, timeout=30, env=None):
    return subprocess.run([PROXYCTL] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def frame_lines(text):
    """{label: rest of the line} of a plain frame (label: the words before
    the first run of two spaces)."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(\S.*?)\s{2,}(\S.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def rate_of(row):
    m = re.match(r"^([0-9.]+)/s", row)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# the live view in a pseudo-terminal


class PtyRun:
    """PROXYCTL ARGS on a fresh pseudo-terminal of 100x30 with TERM=xterm;
    everything it draws is kept in self.out (decoded, escapes and all)."""

    def __init__(self, args, rows=30, cols=100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm", TZ="UTC")
        self.proc = subprocess.Popen([PROXYCTL] + list(args), stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True)
        H._children.append(self.proc)
        os.close(slave)
        self.out = ""

    def read_until(self, pattern, timeout=10.0, start=0):
        """Read until `pattern` (regex) is in the output past offset `start`;
        the match, or an assertion error showing what came."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.out[start:])
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %.0fs; the terminal got:\n%r"
                                     % (pattern, timeout, self.out[-3000:]))
            r, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:         # EIO: the program closed the terminal
                    data = b""
                if not data and self.proc.poll() is not None:
                    raise AssertionError("proxyctl exited (%s) before %r; got:\n%r"
                                         % (self.proc.returncode, pattern, self.out[-3000:]))
                self.out += data.decode("utf-8", "replace")

    def drain(self, seconds=0.3):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.out += data.decode("utf-8", "replace")

    def send(self, data):
        os.write(self.master, data)

    def wait(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.drain(0.05)
        self.drain(0.1)
        return self.proc.poll()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc in H._children:
            H._children.remove(self.proc)
        os.close(self.master)


# ---------------------------------------------------------------------------
# a fake admin socket: canned /metrics, can go away and come back


class FakeAdmin:
    METRICS = ("# TYPE freshcache_requests_total counter\n"
               "freshcache_requests_total %d\n"
               "freshcache_cache_hits_total %d\n"
               "freshcache_cache_misses_total 0\n"
               "freshcache_generation 5\n"
               "freshcache_generation_changed_timestamp_seconds 0\n"
               "freshcache_uptime_seconds %d\n"
               "freshcache_build_info{version=\"fake\"} 1\n")

    def __init__(self, path):
        self.path = path
        self.status = 200
        self.body = None            # None: METRICS counting up
        self.count = 0
        self.sock = None
        self.thread = None
        self.start()

    def start(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, args=(self.sock,), daemon=True)
        self.thread.start()

    def stop(self):
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)    # wakes the accept() in _serve
            except OSError:
                pass
            s.close()
            os.unlink(self.path)
            self.thread.join(5)

    def _serve(self, lsock):
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = c.recv(4096)
                    if not d:
                        break
                    data += d
                self.count += 1
                body = self.body
                if body is None:
                    body = self.METRICS % (self.count * 10, self.count * 9, 100 + self.count)
                body = body.encode()
                c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: text/plain; version=0.0.4\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                          % (self.status, len(body)) + body)


# ---------------------------------------------------------------------------


class TopTest(H.ProxyTestCase):
    config = {"policies": [{"name": "default", "ttl": "60s"}]}

    @property
    def sock(self):
        return self.proxy.config["admin"]["socket"]

    def top_once(self, *extra):
        p = run_proxyctl("-s", self.sock, "top", "--once", *extra)
        self.assertEqual(p.returncode, 0, "top --once: exit %d\nstdout: %s\nstderr: %s"
                         % (p.returncode, p.stdout, p.stderr))
        self.assertEqual(p.stderr, "")
        return p.stdout

    def traffic(self, seconds):
        """Requests in a thread for `seconds`: a few keys, so hits and misses."""
        stop = time.monotonic() + seconds
        seed = self.uniq()

        def loop():
            i = 0
            while time.monotonic() < stop:
                self.get(url("/t/body", size=2000, seed="%s-%d" % (seed, i % 5)))
                i += 1
                time.sleep(0.005)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t

    def test_once_under_traffic(self):
        t = self.traffic(2.0)
        time.sleep(0.3)
        t0 = time.monotonic()
        out = self.top_once()
        took = time.monotonic() - t0
        t.join()
        # two samples a second apart, nothing more
        self.assertGreaterEqual(took, 0.9, out)
        self.assertLess(took, 5, out)
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^freshcache \S+ on %s, up \S" % re.escape(self.sock))
        self.assertRegex(out, r"(?m)^rates: per second, over the last 1\.\d s$")
        rows = frame_lines(out)
        for label in ("requests", "hit", "miss", "revalidated", "collapsed", "pass",
                      "stale served", "origin requests", "latency", "bytes out", "objects",
                      "memory", "connections"):
            self.assertIn(label, rows, "no %r line in:\n%s" % (label, out))
        self.assertGreater(rate_of(rows["requests"]), 0, out)
        self.assertGreater(rate_of(rows["hit"]), 0, out)
        self.assertRegex(rows["requests"], r"hit ratio \d+\.\d %", out)
        self.assertRegex(rows["bytes out"], r"^\d+(\.\d)? (B|KiB|MiB)/s$", out)
        self.assertRegex(rows["memory"], r"^\S+ \S+ of 64\.0 MiB \(\d+\.\d %\)  \[[#.]{20}\]$")
        self.assertRegex(rows["connections"], r"^\d+\s+accepted [0-9.]+/s$")
        self.assertRegex(rows["objects"], r"^[1-9]\d*\s+evictions 0\.0/s$")
        # plain text: no escape sequence for a script to trip on
        self.assertNotIn("\x1b", out)

    def test_once_latency_percentiles(self):
        t = self.traffic(1.8)
        # new keys every request: each one goes to the origin
        seed = self.uniq()
        stop = time.monotonic() + 1.8

        def misses():
            i = 0
            while time.monotonic() < stop:
                self.get(url("/t/body", size=100, seed="%s-%d" % (seed, i)))
                i += 1
        m = threading.Thread(target=misses, daemon=True)
        m.start()
        time.sleep(0.3)
        out = self.top_once()
        t.join()
        m.join()
        rows = frame_lines(out)
        self.assertGreater(rate_of(rows["origin requests"]), 0, out)
        self.assertRegex(rows["latency"],
                         r"^p50 >?[0-9.]+ m?s   p90 >?[0-9.]+ m?s   p99 >?[0-9.]+ m?s$", out)

    def test_once_idle(self):
        out = self.top_once()
        rows = frame_lines(out)
        self.assertRegex(rows["requests"], r"^0\.0/s   hit ratio -$", out)
        self.assertEqual(rows["latency"], "p50 -   p90 -   p99 -", out)

    def test_last_bump(self):
        before = time.time()
        self.proxy.admin("POST", "/purge/generation")
        after = time.time()
        status, stats = self.proxy.admin("GET", "/stats")
        self.assertEqual(status, 200)
        self.assertIsInstance(stats["last_bump"], int)
        self.assertGreaterEqual(stats["last_bump"], int(before) - 1)
        self.assertLessEqual(stats["last_bump"], after + 1)
        status, text = self.proxy.admin("GET", "/metrics")
        m = re.search(r"(?m)^# TYPE freshcache_generation_changed_timestamp_seconds gauge\n"
                      r"freshcache_generation_changed_timestamp_seconds ([0-9.]+)$", text)
        self.assertIsNotNone(m, text)
        self.assertEqual(int(float(m.group(1))), stats["last_bump"])
        self.assertGreaterEqual(float(m.group(1)), before - 1)
        # a policy's bump is a bump too
        time.sleep(1.1)
        self.proxy.admin("POST", "/purge/generation", {"policy": "default"})
        status, later = self.proxy.admin("GET", "/stats")
        self.assertGreater(later["last_bump"], stats["last_bump"])
        # top shows it, in local time, with how long ago
        out = subprocess.run([PROXYCTL, "-s", self.sock, "top", "--once"], capture_output=True,
                             text=True, timeout=30, env=dict(os.environ, TZ="UTC")).stdout
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(later["last_bump"]))
        self.assertRegex(out, r"(?m)^generation %d, last bump %s \((0|1|2)s ago\)$"
                         % (later["generation"], re.escape(when)))

    def test_live_q_quits(self):
        t = self.traffic(3.0)
        run = PtyRun(["-s", self.sock, "top"])
        try:
            run.read_until(r"q quit")
            first = run.read_until(r"averaged since the daemon started")
            # the next frames are rates over the last second
            run.read_until(r"over the last \d\.\d s", start=first.end())
            run.read_until(r"hit ratio")
            run.send(b"q")
            self.assertEqual(run.wait(), 0, run.out[-2000:])
            # curses gave the terminal back: the alternate screen was left
            self.assertIn("\x1b[?1049l", run.out)
        finally:
            run.close()
            t.join()

    def test_live_needs_a_terminal(self):
        p = run_proxyctl("-s", self.sock, "top")
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("top: needs a terminal", p.stderr)
        self.assertIn("--once", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_live_without_a_daemon(self):
        """The first sample is taken before the screen: exit 3 like every
        command, the message on the terminal, no curses."""
        run = PtyRun(["-s", os.path.join(self.tmp, "nothing.sock"), "top"])
        try:
            self.assertEqual(run.wait(), 3, run.out)
            self.assertIn("cannot connect", run.out)
            self.assertNotIn("\x1b[?1049h", run.out)
        finally:
            run.close()

    def test_live_bad_terminal(self):
        env = dict(os.environ, TERM="no-such-terminal-type")
        master, slave = os.openpty()
        try:
            p = subprocess.run([PROXYCTL, "-s", self.sock, "top"], stdin=slave, stdout=slave,
                               stderr=subprocess.PIPE, text=True, env=env, timeout=30)
            self.assertEqual(p.returncode, 1, p)
            self.assertIn("cannot drive this terminal (TERM=no-such-terminal-type)", p.stderr)
        finally:
            os.close(master)
            os.close(slave)

    def test_usage(self):
        for args, msg in ((["top", "--bogus"], "top: unknown argument '--bogus'"),
                          (["top", "now"], "top: unknown argument 'now'"),
                          (["--json", "top", "--once"], "--json does not apply")):
            p = run_proxyctl("-s", self.sock, *args)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn(msg, p.stderr)
            self.assertEqual(p.stdout, "")

    def test_once_without_a_daemon(self):
        p = run_proxyctl("-s", os.path.join(self.tmp, "nothing.sock"), "top", "--once")
        self.assertEqual(p.returncode, 3, p)
        self.assertIn("cannot connect", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_help_lists_top(self):
        p = run_proxyctl("--help")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"(?m)^  top \[--once\]")


class TopFakeAdminTest(unittest.TestCase):
    """Answers a real daemon does not give: a fake admin socket."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fc-top-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "admin.sock")
        self.fake = FakeAdmin(self.path)
        self.addCleanup(self.fake.stop)

    def test_once_not_prometheus(self):
        self.fake.body = "<html>oops</html>\n"
        p = run_proxyctl("-s", self.path, "top", "--once")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("unexpected answer to GET /metrics: line 1 is not a Prometheus sample",
                      p.stderr)
        self.assertEqual(p.stdout, "")

    def test_once_error_status(self):
        self.fake.status = 500
        self.fake.body = "broken\n"
        p = run_proxyctl("-s", self.path, "top", "--once")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("the daemon answered 500", p.stderr)

    def test_once_daemon_gone_between_samples(self):
        """The second sample fails: exit 3 with the reason, no frame."""
        threading.Timer(0.4, self.fake.stop).start()
        p = run_proxyctl("-s", self.path, "top", "--once")
        self.assertEqual(p.returncode, 3, p)
        self.assertIn("cannot connect", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_once_older_daemon(self):
        """No latency histogram, no outcomes: '-' where a number cannot be
        known, and the rest as usual."""
        out = run_proxyctl("-s", self.path, "top", "--once")
        self.assertEqual(out.returncode, 0, out)
        rows = frame_lines(out.stdout)
        self.assertEqual(rows["latency"], "p50 -   p90 -   p99 -")
        # 10 more requests an answer, over about a second (slower under ASan)
        m = re.fullmatch(r"([0-9.]+)/s   hit ratio 100\.0 %", rows["requests"])
        self.assertIsNotNone(m, rows["requests"])
        self.assertTrue(5 <= float(m.group(1)) <= 10.5, rows["requests"])
        self.assertRegex(out.stdout, r"(?m)^freshcache fake on ")
        self.assertRegex(out.stdout, r"(?m)^generation 5, never bumped$")

    def test_live_daemon_goes_away_and_comes_back(self):
        run = PtyRun(["-s", self.path, "top"])
        try:
            run.read_until(r"q quit \| every 1 s")
            self.fake.stop()
            gone = run.read_until(r"cannot connect to ", timeout=5)
            # stderr went to the status line, not over the frame
            self.assertNotIn("proxyctl: cannot connect", run.out)
            served = self.fake.count
            self.fake.start()
            # curses redraws only what changed: the status line's "every
            # 1 s" comes back alone, once a sample succeeded again
            run.read_until(r"every 1 s", start=gone.end(), timeout=5)
            self.assertGreater(self.fake.count, served)
            run.send(b"q")
            self.assertEqual(run.wait(), 0, run.out[-2000:])
        finally:
            run.close()

    def test_live_sigterm_restores_terminal(self):
        run = PtyRun(["-s", self.path, "top"])
        try:
            run.read_until(r"q quit")
            run.proc.terminate()
            self.assertEqual(run.wait(), 0, run.out[-2000:])
            self.assertIn("\x1b[?1049l", run.out)
        finally:
            run.close()


if __name__ == "__main__":
    H.main()
