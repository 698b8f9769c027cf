#!/usr/bin/env python3
"""What an operator is told agrees with what the daemon does (issue 20).

- One daemon per state_dir: a second freshcached on the same state_dir
  refuses to start, naming the first one's pid, and leaves the generation
  alone; the lock goes with its holder, and `-t` does not need it.
- `freshcached -t` refuses what a start refuses, with the same
  FILE:LINE:COLUMN lines: a TLS listener, an https:// origin, a state_dir
  or admin socket directory that cannot be created, an admin socket path
  that is some other file, a missing access log directory, a damaged state
  file, a glob where a regular expression belongs, no origin section (at
  the end of the file, where one would add it).  A good config is OK and
  -t creates nothing.
- Reload: the answer and `proxyctl reload` name every setting that waits
  for a restart (exit 0, a warning line each), compared with the config
  the daemon started with; settings a reload cannot serve (https://
  origin, a TLS listener) are refused and the old config keeps serving.
- `proxyctl generation` and GET /generation show each policy's number.
- `proxyctl verify` compares statuses too: a stored 404 the origin now
  serves is STALE (exit 1).

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import url  # noqa: E402

PROXYCTL = H.PROXYCTL


def need_programs():
    if H.DIRECT:
        raise unittest.SkipTest("needs freshcached (FRESHCACHE_TEST_DIRECT=1)")
    if not PROXYCTL or not os.path.exists(PROXYCTL):
        raise RuntimeError("PROXYCTL is not set to the proxyctl executable "
                           "(run through `meson test`, or export PROXYCTL=...)")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def run_daemon(config_path, timeout=5.0):
    """Start freshcached on `config_path`.  (exit status, output) when it
    exits within `timeout`, else (None, output so far) and it is stopped."""
    p = subprocess.Popen([H.FRESHCACHED, "-c", config_path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    H._children.append(p)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        H._stop_process(p)
        out = p.stdout.read() if p.stdout else b""
        return None, out.decode("utf-8", "replace")
    finally:
        if p in H._children:
            H._children.remove(p)


def check_config(config_path):
    """`freshcached -t -c FILE`: (exit status, stdout, stderr)."""
    p = subprocess.run([H.FRESHCACHED, "-t", "-c", config_path], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


class OperatorCase(H.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        need_programs()
        super().setUpClass()
        cls.sock = cls.proxy.config["admin"]["socket"]

    def other_config(self, **over):
        """The running daemon's config with its own port and admin socket
        (and `over` merged in), written to a new file; returns its path."""
        d = os.path.join(self.tmp, "other-" + self.uniq())
        os.makedirs(d)
        cfg = H.deep_merge(self.proxy.config, {
            "listen": [{"address": "127.0.0.1:%d" % H.free_port()}],
            "admin": {"socket": os.path.join(d, "admin.sock")},
        })
        cfg = H.deep_merge(cfg, over)
        path = os.path.join(d, "freshcache.yaml")
        write(path, H.to_yaml(cfg) + "\n")
        return path


# ---------------------------------------------------------------------------
# 1. one daemon per state_dir


class StateDirLockTest(OperatorCase):

    def test_second_daemon_refused(self):
        state = self.proxy.config["state_dir"]
        self.admin_json("POST", "/purge/generation")
        gen = self.admin_json("GET", "/generation")["generation"]
        with open(os.path.join(state, "generation")) as f:
            before = f.read()
        status, out = run_daemon(self.other_config())
        self.assertIsNotNone(status, "a second daemon on the same state_dir must not start")
        self.assertEqual(status, 1, out)
        self.assertIn("state_dir %s is in use by another freshcached (pid %d" % (
            state, self.proxy.proc.pid), out)
        self.assertIn("two daemons must not share a state_dir", out)
        # the first one goes on, its state untouched
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.admin_json("GET", "/generation")["generation"], gen)
        with open(os.path.join(state, "generation")) as f:
            self.assertEqual(f.read(), before)

    def test_check_config_does_not_need_the_lock(self):
        # -t runs before every reload, while the daemon holds the lock
        rc, out, err = check_config(self.proxy.config_path)
        self.assertEqual((rc, out, err), (0, "OK\n", ""))

    def test_lock_goes_with_its_holder(self):
        state = self.proxy.config["state_dir"]
        first_pid = self.proxy.proc.pid
        self.assertEqual(self.proxy.stop(), 0)
        try:
            # the lock file stays, naming a process that is gone: no matter
            with open(os.path.join(state, "freshcached.lock")) as f:
                self.assertEqual(f.read(), "%d\n" % first_pid)
            status, out = run_daemon(self.other_config(), timeout=1.5)
            self.assertIsNone(status, "the state_dir is free again: %s" % out)
            # and a holder killed outright leaves no lock either
            path = self.other_config()
            p = subprocess.Popen([H.FRESHCACHED, "-c", path], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            H._children.append(p)
            time.sleep(0.5)
            self.assertIsNone(p.poll())
            p.send_signal(signal.SIGKILL)
            p.wait(5)
            H._children.remove(p)
        finally:
            self.proxy.start()
        self.assertGreaterEqual(self.admin_json("GET", "/generation")["generation"], 1)
        with open(os.path.join(state, "freshcached.lock")) as f:
            self.assertEqual(f.read(), "%d\n" % self.proxy.proc.pid)


# ---------------------------------------------------------------------------
# 2. -t refuses what the start refuses


class CheckConfigTest(unittest.TestCase):
    """No daemon of its own: each case is a config file checked with -t and
    then started, which must fail with the same lines."""

    @classmethod
    def setUpClass(cls):
        need_programs()
        import tempfile
        cls.tmp = tempfile.mkdtemp(prefix="fc-op-t-")
        H._tmpdirs.append(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        if not H.KEEP:
            import shutil
            shutil.rmtree(cls.tmp, ignore_errors=True)

    n = 0

    def config(self, text):
        type(self).n += 1
        d = os.path.join(self.tmp, "c%d" % self.n)
        os.makedirs(d)
        path = os.path.join(d, "freshcache.yaml")
        write(path, text.replace("@D@", d).replace("@PORT@", str(H.free_port())))
        return d, path

    def base(self):
        return ("listen:\n  - address: 127.0.0.1:@PORT@\n"
                "origin:\n  url: http://127.0.0.1:9\n"
                "admin:\n  socket: @D@/run/admin.sock\n"
                "state_dir: @D@/state\n"
                "log:\n  access: off\n")

    def assertRefused(self, text, *want):
        """-t and a start both exit 1 with exactly the lines `want` (each
        with @F@ for the file, @D@ for its directory)."""
        d, path = self.config(text)
        lines = [w.replace("@F@", path).replace("@D@", d) for w in want]
        rc, out, err = check_config(path)
        self.assertEqual((rc, out), (1, ""), err)
        self.assertEqual(err.splitlines(), lines)
        status, started = run_daemon(path)
        self.assertEqual(status, 1, "the start must fail as -t said:\n%s" % started)
        self.assertEqual(started.splitlines(), lines, "the same lines at start")
        return d

    def test_good_config_creates_nothing(self):
        d, path = self.config(self.base())
        rc, out, err = check_config(path)
        self.assertEqual((rc, out, err), (0, "OK\n", ""))
        self.assertFalse(os.path.exists(os.path.join(d, "state")))
        self.assertFalse(os.path.exists(os.path.join(d, "run")))
        # and the start creates both (their parent exists)
        status, out = run_daemon(path, timeout=1.5)
        self.assertIsNone(status, out)
        self.assertTrue(os.path.isdir(os.path.join(d, "state")))
        self.assertTrue(os.path.isdir(os.path.join(d, "run")))

    def test_tls_listener_without_its_files(self):
        self.assertRefused(
            "listen:\n  - address: 127.0.0.1:@PORT@\n"
            "  - address: 127.0.0.1:19\n"
            "    tls: { certificate: c.pem, key: k.pem }\n"
            "origin:\n  url: http://127.0.0.1:9\n"
            "admin:\n  socket: @D@/admin.sock\nstate_dir: @D@/state\n",
            "@F@:4:25: listen[1].tls.certificate: cannot read certificate @D@/c.pem: "
            "No such file or directory")

    def test_https_origin_with_missing_ca_file(self):
        self.assertRefused(
            self.base().replace("http://127.0.0.1:9", "https://127.0.0.1:9\n  tls: { ca_file: "
                                "ca.pem }"),
            "@F@:5:19: origin.tls.ca_file: cannot read CA file @D@/ca.pem: "
            "No such file or directory")

    def test_missing_directories(self):
        self.assertRefused(
            self.base().replace("@D@/run/", "@D@/no/run/").replace("@D@/state", "@D@/no/state")
            .replace("access: off", "access: @D@/logs/access.log"),
            "@F@:6:11: admin.socket: @D@/no/run/admin.sock: its directory @D@/no/run cannot be "
            "created: its parent @D@/no does not exist",
            "@F@:7:12: state_dir: @D@/no/state cannot be created: its parent @D@/no does not "
            "exist",
            "@F@:9:11: log.access: @D@/logs/access.log: its directory @D@/logs does not exist")

    def test_socket_path_taken_by_a_file(self):
        d, path = self.config(self.base())
        os.makedirs(os.path.join(d, "run"))
        write(os.path.join(d, "run", "admin.sock"), "precious\n")
        want = ["%s:6:11: admin.socket: %s/run/admin.sock exists and is not a socket; "
                "freshcached does not replace it" % (path, d)]
        rc, out, err = check_config(path)
        self.assertEqual((rc, err.splitlines()), (1, want))
        status, started = run_daemon(path)
        self.assertEqual((status, started.splitlines()), (1, want))
        with open(os.path.join(d, "run", "admin.sock")) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_damaged_state_file(self):
        d, path = self.config(self.base())
        os.makedirs(os.path.join(d, "state"))
        write(os.path.join(d, "state", "generation"), "generation 7\npolicy html seven\n")
        want = ["%s:7:12: state_dir: %s/state/generation:2: unreadable line" % (path, d)]
        rc, out, err = check_config(path)
        self.assertEqual((rc, err.splitlines()), (1, want))
        status, started = run_daemon(path)
        self.assertEqual(status, 1, started)
        self.assertEqual(started.splitlines(), want)

    def test_history_file_not_a_file(self):
        # state_dir/etag-history (the Last-Modified history) taken by a
        # directory: refused by -t and by the start, with the same line
        d, path = self.config(self.base())
        os.makedirs(os.path.join(d, "state", "etag-history"))
        want = ["%s:7:12: state_dir: %s/state/etag-history: not a regular file" % (path, d)]
        rc, out, err = check_config(path)
        self.assertEqual((rc, err.splitlines()), (1, want))
        status, started = run_daemon(path)
        self.assertEqual(status, 1, started)
        self.assertEqual(started.splitlines(), want)
        self.assertTrue(os.path.isdir(os.path.join(d, "state", "etag-history")))

    def test_history_file_not_writable(self):
        # what -t cannot judge (permissions) stops the start, saying which
        # file and why; the file is left as it was
        d, path = self.config(self.base())
        os.makedirs(os.path.join(d, "state"))
        hist = os.path.join(d, "state", "etag-history")
        write(hist, "precious\n")
        if os.geteuid() == 0:
            # root opens any file whatever its mode: an immutable one it cannot
            if subprocess.run(["chattr", "+i", hist], capture_output=True).returncode != 0:
                self.skipTest("chattr +i does not work here")
            self.addCleanup(subprocess.run, ["chattr", "-i", hist], capture_output=True)
            why = "Operation not permitted"
        else:
            os.chmod(hist, 0o400)
            why = "Permission denied"
        rc, out, err = check_config(path)
        self.assertEqual((rc, out, err), (0, "OK\n", ""))
        status, started = run_daemon(path)
        self.assertEqual(status, 1, started)
        self.assertIn("error: Last-Modified history: cannot open %s: %s" % (hist, why), started)
        with open(hist) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_no_origin_section(self):
        # where the file ends, where the section would be added
        text = "# freshcache\n# comments first\nlisten:\n  - address: 127.0.0.1:@PORT@\n# end\n"
        self.assertRefused(
            text,
            "@F@:6:1: origin.url is required: the file has no origin section; add one with the "
            "origin server's address, e.g. origin: { url: http://127.0.0.1:8000 }")

    def test_glob_instead_of_regex(self):
        self.assertRefused(
            self.base() + "policies:\n  - name: js\n    match: { path: '*.js' }\n",
            "@F@:12:20: policies[0].match.path: invalid regular expression '*.js': Invalid "
            "preceding regular expression; the value is a POSIX extended regular expression, "
            "not a glob: for *.js write '\\.js$'")


# ---------------------------------------------------------------------------
# 4. reload says what it did not apply


class ReloadTest(OperatorCase):
    config = {"workers": 2, "policies": [{"name": "html",
                                          "match": {"content_type": ["text/html"]}},
                                         {"name": "default"}]}

    def setUp(self):
        super().setUp()
        with open(self.proxy.config_path) as f:
            self.good = f.read()
        self.addCleanup(self.restore)

    def restore(self):
        write(self.proxy.config_path, self.good)
        self.proxy.admin("POST", "/reload")

    def write_config(self, over):
        write(self.proxy.config_path, H.to_yaml(H.deep_merge(self.proxy.config, over)) + "\n")

    def test_restart_settings_listed(self):
        metrics_port = H.free_port()
        self.write_config({"workers": 3, "cache": {"memory": "32MiB"},
                           "admin": {"mode": "0600"},
                           "metrics": {"listen": "127.0.0.1:%d" % metrics_port},
                           "limits": {"client_timeout": "20s"}})
        p = self.proxyctl("reload")
        self.assertEqual(p.stdout, "reload OK\n")
        self.assertEqual(p.stderr.splitlines(), [
            "proxyctl: warning: %s changed; takes effect on restart" % k
            for k in ("workers", "cache.memory", "admin.mode", "metrics.listen")])
        # the daemon's log says the same
        for k in ("workers", "cache.memory", "admin.mode", "metrics.listen"):
            self.assertIn("reload: %s changed; takes effect on restart" % k, self.proxy.log_tail(80))
        # and it is true: metrics.listen did not open
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", metrics_port), timeout=1).close()
        # a reload without further changes still lists them: they are still
        # not in force (compared with the config the daemon started with)
        doc = self.admin_json("POST", "/reload")
        self.assertEqual(doc, {"ok": True, "restart_required": [
            "workers", "cache.memory", "admin.mode", "metrics.listen"]})
        # back to the start values: nothing pending, the spec's answer exactly
        self.restore()
        self.assertEqual(self.admin_json("POST", "/reload"), {"ok": True})
        p = self.proxyctl("reload")
        self.assertEqual((p.stdout, p.stderr), ("reload OK\n", ""))

    def test_unservable_settings_refused(self):
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed, cc="max-age=60")
        self.assertOk(self.get(t), H.expected_body(10, seed))
        listen = self.proxy.config["listen"][0]["address"]
        # a TLS listener whose certificate cannot be read is refused
        self.write_config({"listen": [{"address": listen,
                                       "tls": {"certificate": "c.pem", "key": "k.pem"}}]})
        p = self.proxyctl("reload", expect=1)
        self.assertRegex(p.stderr, r"^\S+:\d+:\d+: listen\[0\]\.tls\.certificate: cannot read "
                                   r"certificate \S+c\.pem: No such file or directory")
        # the old config keeps serving
        r = self.get(t)
        self.assertOk(r, H.expected_body(10, seed))
        self.assertHit(r)


# ---------------------------------------------------------------------------
# 5. per-policy generations


class GenerationTest(OperatorCase):
    config = {"policies": [{"name": "hashed-assets", "match": {"path": r"[.-][0-9a-f]{8,}\.js$"}},
                           {"name": "html", "match": {"content_type": ["text/html"]}},
                           {"name": "default"}]}

    def test_text_and_json(self):
        self.proxyctl("purge", "--generation", "--policy", "html")
        self.proxyctl("purge", "--generation", "--policy", "html")
        g = self.admin_json("GET", "/generation")["generation"]
        p = self.proxyctl("generation")
        self.assertEqual(p.stdout, "generation %d\n"
                                   "policy hashed-assets generation 1\n"
                                   "policy html generation 3\n"
                                   "policy default generation 1\n" % g)
        doc = json.loads(self.proxyctl("--json", "generation").stdout)
        self.assertEqual(doc, {"generation": g,
                               "policies": {"hashed-assets": 1, "html": 3, "default": 1}})
        self.assertEqual(list(doc["policies"]), ["hashed-assets", "html", "default"])


# ---------------------------------------------------------------------------
# 3. verify compares statuses


class VerifyStatusTest(OperatorCase):
    config = {"policies": [{"name": "html", "match": {"content_type": ["text/html"]}},
                           {"name": "default"}]}

    def test_stored_404_now_served(self):
        key = self.uniq()
        t = url("/t/mutable", key=key, ct="text/html")
        self.origin.set(key, "hello", status=404)
        self.assertEqual(self.get(t).status, 404)
        self.assertHit(self.get(t))
        p = self.proxyctl("verify", t)
        self.assertRegex(p.stdout, r"^fresh\s+\S+\s+404 sha256:")
        self.origin.set(key, "hello", status=200)
        p = self.proxyctl("verify", t, expect=1)
        self.assertRegex(p.stdout, r"^STALE\s+\S+\s+proxy 404 sha256:\S+ origin 200 sha256:")
        self.assertIn("stale content in the cache", p.stderr)
        # --json: the daemon's answer as it came
        p = self.proxyctl("--json", "verify", t, expect=1)
        doc = json.loads(p.stdout)
        self.assertEqual(p.stdout.count("\n"), 1, p.stdout)
        self.assertEqual((doc["results"][0]["proxy_status"], doc["results"][0]["origin_status"]),
                         (404, 200))


if __name__ == "__main__":
    H.main()
