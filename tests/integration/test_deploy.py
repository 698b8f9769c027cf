#!/usr/bin/env python3
"""A deploy played end to end (issue 3, ../shared/seed): freshcached with the
spec's three policies and content-hash ETags in front of `test-origin --root`,
a "typical web server" whose ETags come from file mtime and size and which
answers 304 to them even after the content changed.

The deploy replaces index.html with different bytes of the same size and the
same mtime.  Before a purge the proxy keeps serving the old page (the
origin's 304 confirms it: the seed's bug, shown so the reason for the purge
is on record); `proxyctl purge --generation` makes the next request an
unconditional refetch, clients holding the old ETag get 200 with a new one,
and the unchanged hashed asset keeps its ETag and its 304s.  Then: `proxyctl
verify` as the smoke test, per-policy, path, prefix and tag purges, a soft
purge served under stale-if-error while the origin is down, the generation
surviving a restart, the warning for an asset changed without a rename, and
what `after_purge: revalidate` trades.

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from email.utils import parsedate_to_datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import req_header, url  # noqa: E402

PROXYCTL = os.environ.get("PROXYCTL")
SITE = os.path.join(H.REPO, "examples", "site")

INDEX = "/"
ABOUT = "/about.html"
ASSET = "/assets/app.3f9a2c1d.js"
STYLE = "/assets/style.8b7e6d5c.css"
LOGO = "/logo.svg"

# The spec's policies (conf/freshcache.yaml).
HASHED_ASSETS = {
    "name": "hashed-assets",
    "match": {"path": r"[.-][0-9a-f]{8,}\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$"},
    "ttl": "365d",
    "response_cache_control": "public, max-age=31536000, immutable",
}
HTML = {
    "name": "html",
    "match": {"content_type": ["text/html"]},
    "ttl": "0s",
    "stale_if_error": "1h",
    "response_cache_control": "no-cache",
}
DEFAULT = {"name": "default", "ttl": "origin"}
SPEC_POLICIES = [HASHED_ASSETS, HTML, DEFAULT]

CONTENT_HASH_ETAG = re.compile(r'"[0-9a-f]{64}"')


def wait_admin(path, proc=None, timeout=5.0):
    """freshcached binds its listeners before the admin socket: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("freshcached exited with status %s" % proc.returncode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("admin socket %s not accepting within %.0fs" % (path, timeout))
            time.sleep(0.02)
        finally:
            s.close()


class DeployBase(H.ProxyTestCase):
    """One origin serving a private copy of examples/site, one freshcached
    with the spec's policies (content-hash ETags and after_purge: refetch are
    the defaults and left implicit on purpose)."""

    config = {"policies": SPEC_POLICIES}

    @classmethod
    def setUpClass(cls):
        if not PROXYCTL or not os.path.exists(PROXYCTL):
            raise RuntimeError("PROXYCTL is not set to the proxyctl executable "
                               "(run through `meson test`, or export PROXYCTL=...)")
        if H.DIRECT:
            raise unittest.SkipTest("deploy tests need freshcached (FRESHCACHE_TEST_DIRECT=1)")
        parent = tempfile.mkdtemp(prefix="fc-site-")
        H._tmpdirs.append(parent)
        cls.addClassCleanup(shutil.rmtree, parent, True)     # runs after the servers stop
        cls.site = os.path.join(parent, "site")
        shutil.copytree(SITE, cls.site)
        cls.origin_root = cls.site
        super().setUpClass()
        cls.sock = cls.proxy.config["admin"]["socket"]
        wait_admin(cls.sock, cls.proxy.proc)

    # -- tools ----------------------------------------------------------------

    def generations(self):
        """`proxyctl generation` read back: (global, {policy: generation})."""
        out = self.proxyctl("generation").stdout
        m = re.match(r"generation (\d+)\n((?:policy \S+ generation \d+\n)*)$", out)
        self.assertIsNotNone(m, "proxyctl generation printed %r" % out)
        policies = dict((name, int(n)) for name, n in
                        re.findall(r"policy (\S+) generation (\d+)", m.group(2)))
        return int(m.group(1)), policies

    def generation(self):
        return self.generations()[0]

    def file(self, path):
        return os.path.join(self.site, "index.html" if path == "/" else path.lstrip("/"))

    def read(self, path):
        with open(self.file(path), "rb") as f:
            return f.read()

    def deploy_same_size_same_mtime(self, path, new):
        """Overwrite the file in place (a copy, not a rename, as the seed's
        deploys do) with different bytes of the same size, and put its
        mtime back: the origin's metadata ETag cannot change."""
        fn = self.file(path)
        st = os.stat(fn)
        old = self.read(path)
        self.assertEqual(len(new), len(old), "the deploy must keep the size")
        self.assertNotEqual(new, old)
        with open(fn, "r+b") as f:
            f.write(new)
        os.utime(fn, ns=(st.st_atime_ns, st.st_mtime_ns))
        st2 = os.stat(fn)
        self.assertEqual((st2.st_size, st2.st_mtime_ns), (st.st_size, st.st_mtime_ns))

    def assertContentHashEtag(self, resp):
        etag = resp.header("ETag")
        self.assertIsNotNone(etag, "no ETag: %r" % resp)
        self.assertRegex(etag, CONTENT_HASH_ETAG, "not a content-hash ETag: %r" % resp)
        return etag

    def assertCacheStatus(self, resp, **want):
        cs = resp.cache_status
        for k, v in want.items():
            k = k.replace("_", "-")
            self.assertEqual(cs.get(k), v, "Cache-Status %r: %s should be %r"
                             % (resp.header("Cache-Status"), k, v))

    def last_origin_request(self, target):
        logged = self.origin.log(target)
        self.assertTrue(logged, "the origin received no request for %s" % target)
        return logged[-1]

    def daemon_log(self):
        with open(self.proxy.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------


class DeployScenarioTest(DeployBase):

    def test_deploy_end_to_end(self):
        old_index = self.read(INDEX)
        asset_bytes = self.read(ASSET)

        # -- warm the cache --------------------------------------------------
        r = self.get(INDEX)
        self.assertOk(r, old_index)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        self.assertEqual(r.header("Cache-Control"), "no-cache", r)
        old_etag = self.assertContentHashEtag(r)
        r = self.get(INDEX)
        self.assertOk(r, old_index)
        # html: ttl 0s, so every request revalidates; the origin says 304
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        self.assertEqual(r.header("ETag"), old_etag)
        logged = self.last_origin_request(INDEX)
        self.assertIsNotNone(req_header(logged, "If-None-Match"),
                             "the revalidation carried no validator: %r" % logged)

        r = self.get(ASSET)
        self.assertOk(r, asset_bytes)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        asset_etag = self.assertContentHashEtag(r)
        r = self.get(ASSET)
        self.assertOk(r, asset_bytes)
        self.assertHit(r)
        self.assertEqual(r.header("ETag"), asset_etag)
        self.assertOriginCount(ASSET, 1)
        self.assertNotEqual(old_etag, asset_etag)

        # a browser holding the asset gets 304 from the proxy alone
        r = self.get(ASSET, {"If-None-Match": asset_etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        self.assertHit(r)
        self.assertEqual(r.header("ETag"), asset_etag)
        self.assertOriginCount(ASSET, 1)

        # -- deploy: same size, same mtime, different bytes -------------------
        self.assertIn(b">v1<", old_index)
        new_index = old_index.replace(b">v1<", b">v2<")
        self.deploy_same_size_same_mtime(INDEX, new_index)

        # The seed's bug, before any purge: the origin's metadata ETag still
        # matches, it answers 304, and the old page keeps being served.  This
        # is why the deploy must purge.
        r = self.get(INDEX)
        self.assertOk(r, old_index)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        self.assertEqual(r.header("ETag"), old_etag)

        # the smoke test sees it: exit 1, STALE for /
        p = self.proxyctl("verify", INDEX, ASSET, expect=1)
        lines = {ln.split()[1]: ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()}
        self.assertEqual(lines.get(INDEX), "STALE", p.stdout)
        self.assertEqual(lines.get(ASSET), "fresh", p.stdout)
        self.assertIn("purge --generation", p.stderr)

        # -- the purge -------------------------------------------------------
        self.origin.reset()
        p = self.proxyctl("purge", "--generation")
        self.assertEqual(p.stdout, "generation 2 (was 1)\n")
        self.assertEqual(p.stderr, "")
        self.assertEqual(self.generation(), 2)

        r = self.get(INDEX)
        self.assertOk(r, new_index)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        new_etag = self.assertContentHashEtag(r)
        self.assertNotEqual(new_etag, old_etag)
        # after_purge: refetch — the old validators are not sent
        self.assertOriginCount(INDEX, 1)
        logged = self.last_origin_request(INDEX)
        self.assertIsNone(req_header(logged, "If-None-Match"), logged)
        self.assertIsNone(req_header(logged, "If-Modified-Since"), logged)

        # a browser holding the old page's ETag gets the new page
        r = self.get(INDEX, {"If-None-Match": old_etag})
        self.assertOk(r, new_index)
        self.assertEqual(r.header("ETag"), new_etag)
        # and one holding the new ETag gets 304
        r = self.get(INDEX, {"If-None-Match": new_etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.header("ETag"), new_etag)

        # the unchanged asset keeps its ETag; its browsers keep getting 304
        r = self.get(ASSET, {"If-None-Match": asset_etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.header("ETag"), asset_etag)
        self.assertOriginCount(ASSET, 1)            # refetched once, unconditionally
        logged = self.last_origin_request(ASSET)
        self.assertIsNone(req_header(logged, "If-None-Match"), logged)
        r = self.get(ASSET, {"If-None-Match": asset_etag})
        self.assertEqual(r.status, 304, r)
        self.assertHit(r)
        r = self.get(ASSET)
        self.assertOk(r, asset_bytes)
        self.assertHit(r)
        self.assertEqual(r.header("ETag"), asset_etag)
        self.assertOriginCount(ASSET, 1)

        # the smoke test passes now
        p = self.proxyctl("verify", INDEX, ASSET)
        words = [ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()]
        self.assertEqual(words, ["fresh", "fresh"], p.stdout)
        p = self.proxyctl("--json", "verify", INDEX, ASSET)
        json.loads(p.stdout)

        # the daemon did not warn: no hashed asset changed
        self.assertNotIn("changed content", self.daemon_log())


class LastModifiedAfterDeployTest(DeployBase):
    """The proxy's Last-Modified is when it first stored the bytes, so an
    If-Modified-Since from before a deploy cannot validate the new bytes —
    even when the deploy and the purge fall in the same second as the
    browser's copy (HTTP dates have one-second resolution)."""

    def test_if_modified_since_after_deploy(self):
        # start just after a second boundary so that everything below most
        # likely happens within one second: the case a naive Last-Modified
        # (first-seen time of the new bytes) gets wrong
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        old = self.read(INDEX)
        r = self.get(INDEX)
        self.assertOk(r, old)
        old_lm = r.header("Last-Modified")
        self.assertIsNotNone(old_lm, r)
        new = old.replace(b">v1<", b">v3<")
        self.deploy_same_size_same_mtime(INDEX, new)
        self.proxyctl("purge", "--generation")
        r = self.get(INDEX, {"If-Modified-Since": old_lm})
        self.assertEqual(r.status, 200,
                         "If-Modified-Since: %s (the old page's Last-Modified) was answered "
                         "%d after a deploy changed the page; new Last-Modified %s"
                         % (old_lm, r.status, r.header("Last-Modified")))
        self.assertBody(r, new)
        # and the new Last-Modified validates the new bytes
        r = self.get(INDEX, {"If-Modified-Since": r.header("Last-Modified")})
        self.assertEqual(r.status, 304, r)


class PolicyPurgeTest(DeployBase):

    def test_purge_one_policy(self):
        page = self.read(INDEX)
        asset = self.read(ASSET)
        self.assertOk(self.get(INDEX), page)
        r = self.get(INDEX)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        self.assertOk(self.get(ASSET), asset)
        self.assertHit(self.get(ASSET))
        gen = self.generation()

        self.origin.reset()
        p = self.proxyctl("purge", "--generation", "--policy", "html")
        self.assertEqual(p.stdout, "policy html generation 2 (was 1)\n")
        self.assertEqual(self.generation(), gen, "a policy purge changed the global generation")
        self.assertEqual(self.generations()[1], {"hashed-assets": 1, "html": 2, "default": 1})

        # the page: refetched from the origin, unconditionally
        r = self.get(INDEX)
        self.assertOk(r, page)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        self.assertOriginCount(INDEX, 1)
        self.assertIsNone(req_header(self.last_origin_request(INDEX), "If-None-Match"))
        # the hashed asset: still a hit, the origin not asked
        r = self.get(ASSET)
        self.assertOk(r, asset)
        self.assertHit(r)
        self.assertOriginCount(ASSET, 0)

        # the other way round: the assets' policy alone leaves the page stored
        self.origin.reset()
        p = self.proxyctl("purge", "--generation", "--policy", "hashed-assets")
        self.assertEqual(p.stdout, "policy hashed-assets generation 2 (was 1)\n")
        r = self.get(ASSET)
        self.assertOk(r, asset)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        r = self.get(INDEX)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)   # revalidated, not refetched
        self.assertIsNotNone(req_header(self.last_origin_request(INDEX), "If-None-Match"))
        self.assertEqual(self.generation(), gen)

    def test_unknown_policy(self):
        gen = self.generation()
        p = self.proxyctl("purge", "--generation", "--policy", "nosuch", expect=1)
        self.assertEqual(p.stdout, "")
        self.assertIn('unknown policy "nosuch"', p.stderr)
        self.assertEqual(self.generation(), gen)


class TargetedPurgeTest(DeployBase):

    def test_prefix_purge(self):
        for t in (ASSET, STYLE, LOGO):
            self.assertOk(self.get(t), self.read(t))
            self.assertHit(self.get(t))
        self.origin.reset()
        p = self.proxyctl("purge", "--prefix", "/assets/")
        self.assertEqual(p.stdout, "purged 2\n")
        for t in (ASSET, STYLE):
            r = self.get(t)
            self.assertOk(r, self.read(t))
            self.assertCacheStatus(r, fwd="miss", stored=True)
            self.assertOriginCount(t, 1)
        r = self.get(LOGO)
        self.assertHit(r)
        self.assertOriginCount(LOGO, 0)
        # nothing left under the prefix to purge... until fetched again
        self.assertEqual(self.proxyctl("purge", "--prefix", "/nothing/").stdout, "purged 0\n")

    def test_path_purge(self):
        self.assertOk(self.get(LOGO), self.read(LOGO))
        self.assertOk(self.get(STYLE), self.read(STYLE))
        self.origin.reset()
        p = self.proxyctl("purge", LOGO)
        self.assertEqual(p.stdout, "purged 1\n")
        r = self.get(LOGO)
        self.assertCacheStatus(r, fwd="miss", stored=True)
        self.assertHit(self.get(STYLE))
        self.assertOriginCount(STYLE, 0)

    def test_tag_purge(self):
        a, b, c = self.uniq(), self.uniq(), self.uniq()
        ta = url("/t/body", size=100, cc="max-age=60", seed=a, hdr="Surrogate-Key:release-7 pages")
        tb = url("/t/body", size=100, cc="max-age=60", seed=b, hdr="Cache-Tag:pages,api")
        tc = url("/t/body", size=100, cc="max-age=60", seed=c, hdr="Surrogate-Key:release-8")
        for t, seed in ((ta, a), (tb, b), (tc, c)):
            r = self.get(t)
            self.assertOk(r, H.expected_body(100, seed))
            self.assertFalse(r.has("Surrogate-Key"), "Surrogate-Key reached the client: %r" % r)
            self.assertFalse(r.has("Cache-Tag"), "Cache-Tag reached the client: %r" % r)
            r = self.get(t)
            self.assertHit(r)
            self.assertFalse(r.has("Surrogate-Key"), "Surrogate-Key reached the client: %r" % r)
            self.assertFalse(r.has("Cache-Tag"), "Cache-Tag reached the client: %r" % r)

        p = self.proxyctl("purge", "--tag", "pages")
        self.assertEqual(p.stdout, "purged 2\n")
        for t in (ta, tb):
            r = self.get(t)
            self.assertCacheStatus(r, fwd="miss", stored=True)
            self.assertOriginCount(t, 2)
            self.assertFalse(r.has("Surrogate-Key"), r)
        self.assertHit(self.get(tc))
        self.assertOriginCount(tc, 1)
        # one of several tags, either header, either separator
        self.assertEqual(self.proxyctl("purge", "--tag", "api").stdout, "purged 1\n")
        self.assertEqual(self.proxyctl("purge", "--tag", "release-8").stdout, "purged 1\n")
        self.assertEqual(self.proxyctl("purge", "--tag", "release").stdout, "purged 0\n")
        self.assertCacheStatus(self.get(tb), fwd="miss", stored=True)
        self.assertCacheStatus(self.get(tc), fwd="miss", stored=True)
        self.assertHit(self.get(ta))


class SoftPurgeOriginDownTest(DeployBase):
    """A soft purge marks stale; an origin that is down then lets the stale
    copy stand in (stale-if-error), with the Cache-Status saying so."""

    config = {"policies": [HASHED_ASSETS, HTML, dict(DEFAULT, stale_if_error="1h")]}

    def stop_origin(self):
        port = self.origin.port
        self.origin.stop()
        return port

    def restart_origin(self, port):
        cls = type(self)
        deadline = time.monotonic() + 5
        while True:
            try:
                cls.origin = H.Origin(cls.tmp, root=cls.site, port=port)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        cls.addClassCleanup(cls.origin.stop)

    def test_soft_purge_served_stale_while_origin_down(self):
        logo = self.read(LOGO)
        self.assertOk(self.get(LOGO), logo)
        r = self.get(LOGO)
        self.assertHit(r)
        etag = self.assertContentHashEtag(r)

        p = self.proxyctl("purge", "--soft", LOGO)
        self.assertEqual(p.stdout, "purged 1\n")

        port = self.stop_origin()
        try:
            r = self.get(LOGO)
            self.assertOk(r, logo)
            self.assertCacheStatus(r, fwd="stale", detail="stale-if-error")
            self.assertEqual(r.header("ETag"), etag)
            # still soft-purged: the next request tries the origin again
            r = self.get(LOGO)
            self.assertOk(r, logo)
            self.assertCacheStatus(r, fwd="stale", detail="stale-if-error")
        finally:
            self.restart_origin(port)

        # origin back: the soft-purged copy is revalidated, not refetched
        r = self.get(LOGO)
        self.assertOk(r, logo)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        self.assertIsNotNone(req_header(self.last_origin_request(LOGO), "If-None-Match"))
        self.assertEqual(r.header("ETag"), etag)
        self.assertHit(self.get(LOGO))

    def test_hard_purge_not_served_stale(self):
        logo = self.read(LOGO)
        self.assertOk(self.get(LOGO), logo)
        self.assertEqual(self.proxyctl("purge", LOGO).stdout, "purged 1\n")
        port = self.stop_origin()
        try:
            r = self.get(LOGO)
            self.assertGreaterEqual(r.status, 500, r)
            self.assertNotEqual(r.body, logo)
        finally:
            self.restart_origin(port)

    def test_html_stale_if_error_but_not_after_a_generation_purge(self):
        page = self.read(ABOUT)
        self.assertOk(self.get(ABOUT), page)
        port = self.stop_origin()
        try:
            # html has ttl 0s and stale_if_error 1h: the page stands in
            r = self.get(ABOUT)
            self.assertOk(r, page)
            self.assertCacheStatus(r, fwd="stale", detail="stale-if-error")
            # a deploy's purge is final: older generations are not served,
            # not even stale
            self.proxyctl("purge", "--generation")
            r = self.get(ABOUT)
            self.assertGreaterEqual(r.status, 500, r)
        finally:
            self.restart_origin(port)
        r = self.get(ABOUT)
        self.assertOk(r, page)
        self.assertCacheStatus(r, fwd="miss", stored=True)


class RestartTest(DeployBase):

    def test_restart_keeps_generation(self):
        self.assertEqual(self.generation(), 1)
        self.assertEqual(self.proxyctl("purge", "--generation").stdout, "generation 2 (was 1)\n")
        self.assertEqual(self.proxyctl("purge", "--generation").stdout, "generation 3 (was 2)\n")
        self.proxyctl("purge", "--generation", "--policy", "html")
        state = os.path.join(self.proxy.config["state_dir"], "generation")
        self.assertTrue(os.path.exists(state), "no state file in state_dir")

        self.assertEqual(self.proxy.stop(), 0)
        self.proxy.start()
        wait_admin(self.sock, self.proxy.proc)

        self.assertEqual(self.generation(), 3)
        status, doc = self.proxy.admin("GET", "/generation")
        self.assertEqual((status, doc["generation"]), (200, 3))
        # the policy's number survives the restart too
        self.assertEqual(doc["policies"]["html"], 2, doc)
        # never decreasing: the next bumps continue from there
        self.assertEqual(self.proxyctl("purge", "--generation").stdout, "generation 4 (was 3)\n")
        self.assertEqual(self.proxyctl("purge", "--generation", "--policy", "html").stdout,
                         "policy html generation 3 (was 2)\n")
        # and it serves
        self.assertOk(self.get(INDEX), self.read(INDEX))


class RestartLastModifiedTest(DeployBase):
    """The Last-Modified history lives in state_dir/etag-history (issue 19):
    a restart keeps each URL's first-seen time, so unchanged bytes keep
    their Last-Modified and a client's If-Modified-Since still gets 304;
    changed bytes after the restart still get a later one."""

    def test_restart_keeps_last_modified(self):
        r = self.get(ASSET)
        self.assertOk(r, self.read(ASSET))
        lm = r.header("Last-Modified")
        etag = r.header("ETag")
        self.assertIsNotNone(lm, r)
        page = self.get(ABOUT)
        self.assertOk(page)
        page_lm = page.header("Last-Modified")
        # a first sighting after the restart would be at least a second later
        time.sleep(1.1)
        self.assertEqual(self.proxy.stop(), 0)
        self.proxy.start()
        wait_admin(self.sock, self.proxy.proc)

        r = self.get(ASSET)
        self.assertOk(r, self.read(ASSET))
        self.assertNotHit(r)                # the store did not survive, the history did
        self.assertEqual((r.header("ETag"), r.header("Last-Modified")), (etag, lm))
        r = self.get(ASSET, {"If-Modified-Since": lm})
        self.assertEqual(r.status, 304, r)
        history = os.path.join(self.proxy.config["state_dir"], "etag-history")
        self.assertTrue(os.path.isfile(history), "no etag-history in state_dir")

        # bytes changed after the restart: a later Last-Modified, and the
        # old one no longer validates
        new = self.read(ABOUT).replace(b"</body>", b"</BODY>")
        self.deploy_same_size_same_mtime(ABOUT, new)
        self.proxyctl("purge", "--generation")
        page = self.get(ABOUT, {"If-Modified-Since": page_lm})
        self.assertEqual(page.status, 200, page)
        self.assertBody(page, new)
        self.assertGreater(parsedate_to_datetime(page.header("Last-Modified")),
                           parsedate_to_datetime(page_lm))


class MemoryGivenBackTest(H.ProxyTestCase):
    """Issue 19: memory freed by a purge goes back to the system.  The
    sweep frees the purged objects, then, the store having shrunk by at
    least 8 MiB, the main thread calls malloc_trim and says so at debug
    level.  (RSS itself is measured by bench/run's rss scenario, not here.)"""

    config = {"log": {"level": "debug"}, "cache": {"memory": "64MiB"}}

    def test_purge_of_a_filled_cache_trims(self):
        seed = self.uniq()
        with self.conn() as c:
            for i in range(96):                     # 96 x 128 KiB = 12 MiB
                r = c.request("GET", url("/t/body", size=128 * 1024, cc="max-age=600",
                                         seed="%s-%d" % (seed, i)))
                self.assertOk(r)
        st, stats = self.proxy.admin("GET", "/stats")
        self.assertGreaterEqual(stats["bytes"], 12 * 1024 * 1024, stats)
        filled = stats["bytes"]
        # The high mark the trim measures from is taken by the sweep
        # (every 100 ms): let it see the filled store.
        time.sleep(0.5)
        st, body = self.proxy.admin("POST", "/purge/generation")
        self.assertEqual(st, 200, body)
        # The sweep runs in slices every 100 ms: wait for it to finish.
        deadline = time.monotonic() + 10
        log = ""
        while time.monotonic() < deadline:
            with open(self.proxy.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            st, stats = self.proxy.admin("GET", "/stats")
            if "released freed memory to the system" in log and stats["objects"] == 0:
                break
            time.sleep(0.2)
        self.assertIn("released freed memory to the system", log)
        self.assertEqual(stats["objects"], 0, stats)
        # One trim once the sweep caught up, for the whole shrink: a pass
        # spans several sweep calls, and trimming after the first one left
        # what the others freed in the arenas.
        shrinks = [int(m) for m in re.findall(r"the store shrank by (\d+) MiB", log)]
        self.assertEqual(shrinks, [filled >> 20], log)
        # the workers shed what they pool for reuse first (the trim cannot
        # give back pages that pooled parts keep)
        self.assertLess(log.index("workers shed their pools"),
                        log.index("released freed memory to the system"), log)


class AssetChangedWithoutRenameTest(DeployBase):

    def test_warning_logged(self):
        old = self.read(ASSET)
        self.assertOk(self.get(ASSET), old)
        self.assertOk(self.get(STYLE), self.read(STYLE))
        # the build changed the asset's bytes but not its (hashed) name
        new = old.replace(b"served at", b"SERVED AT")
        self.deploy_same_size_same_mtime(ASSET, new)
        self.assertHit(self.get(ASSET))     # immutable: no purge, no change seen
        self.assertNotIn("changed content", self.daemon_log())

        self.proxyctl("purge", "--generation")
        r = self.get(ASSET)
        self.assertOk(r, new)
        self.assertOk(self.get(STYLE), self.read(STYLE))     # refetched, same bytes
        deadline = time.monotonic() + 3
        while "changed content" not in self.daemon_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        warnings = [ln for ln in self.daemon_log().splitlines() if "changed content" in ln]
        self.assertEqual(len(warnings), 1, "daemon output:\n%s" % self.daemon_log())
        self.assertIn(ASSET, warnings[0])
        self.assertIn("hashed-assets", warnings[0])


class AfterPurgeRevalidateTest(DeployBase):
    """`after_purge: revalidate` trusts the origin's validators: cheap 304s
    for what did not change, but an origin with metadata ETags confirms
    changed content with a 304 too — which is why refetch is the default."""

    config = {"policies": SPEC_POLICIES, "cache": {"after_purge": "revalidate"}}

    def purge_and_settle(self):
        self.proxyctl("purge", "--generation")
        # freshcached sweeps older generations in the background (every
        # 100 ms): what the next request does must not depend on whether the
        # sweep ran first.
        time.sleep(0.5)

    def test_unchanged_asset_revalidated(self):
        asset = self.read(ASSET)
        self.assertOk(self.get(ASSET), asset)
        asset_etag = self.assertContentHashEtag(self.get(ASSET))
        self.origin.reset()
        self.purge_and_settle()

        # revalidated with the origin's own validators (a cheap 304), not
        # refetched
        r = self.get(ASSET, {"If-None-Match": asset_etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.header("ETag"), asset_etag)
        self.assertOriginCount(ASSET, 1)
        logged = self.last_origin_request(ASSET)
        self.assertIsNotNone(req_header(logged, "If-None-Match"),
                             "after_purge: revalidate sent no validator: %r" % logged)
        self.assertCacheStatus(self.get(ASSET, {"If-None-Match": asset_etag}), hit=True)

    def test_metadata_etag_defeats_revalidate(self):
        old = self.read(ABOUT)
        self.assertOk(self.get(ABOUT), old)
        new = old.replace(b"demo", b"DEMO")
        self.assertNotEqual(new, old)
        self.deploy_same_size_same_mtime(ABOUT, new)
        self.purge_and_settle()

        # the metadata ETag still matches, so the old bytes survive the
        # purge — the trade documented in docs/deploying.md
        r = self.get(ABOUT)
        self.assertOk(r, old)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        p = self.proxyctl("verify", ABOUT, expect=1)
        self.assertIn("STALE", p.stdout)

        # a deploy that changes the mtime (as `touch` or a rename does) is
        # seen: the origin's validator no longer matches
        fn = self.file(ABOUT)
        st = os.stat(fn)
        os.utime(fn, (st.st_atime, st.st_mtime + 10))
        self.purge_and_settle()
        r = self.get(ABOUT)
        self.assertOk(r, new)
        self.proxyctl("verify", ABOUT)


if __name__ == "__main__":
    H.main()
