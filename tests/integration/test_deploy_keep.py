#!/usr/bin/env python3
"""Deploys beyond purging (issue 14): the previous release's assets kept
after a deploy removed them from the origin (`keep_after_deploy`), and 103
Early Hints from the stored page while it is revalidated (`early_hints`),
over HTTP/1.1 and HTTP/2.

The deploy here is the one that breaks single-page apps: the new release
uploads app.NEW.js and index.html pointing to it, removes app.OLD.js, and
bumps the generation; a tab that loaded the old page before the deploy
then asks for app.OLD.js.

Uses python3-h2 (the harness's H2Conn): run under /usr/bin/python3.
Needs FRESHCACHED and TEST_ORIGIN (see harness.py)."""

import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import url  # noqa: E402

HASHED = r"[.-][0-9a-f]{8,}\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$"

OLD_JS = "/assets/app.0123abcd.js"
NEW_JS = "/assets/app.4567ef01.js"
OLD_PAGE = b'<!doctype html><script src="/assets/app.0123abcd.js"></script>\n'
NEW_PAGE = b'<!doctype html><script src="/assets/app.4567ef01.js"></script>\n'

PRELOAD = "</assets/app.0123abcd.js>; rel=preload; as=script"
MODULE = "</assets/m.89abcdef.mjs>; rel=modulepreload"
PRECONNECT = "<https://cdn.example>; rel=preconnect"
CANONICAL = "</>; rel=canonical"


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class DeployKeepBase(H.ProxyTestCase):
    """The origin serves a scratch directory (files appear and go as a
    deploy would make them) plus the scripted /t/ endpoints."""

    config = {
        "log": {"level": "info"},
        "policies": [
            # a window short enough to step past in a test
            {"name": "short-keep", "match": {"path": r"^/short/.*" + HASHED},
             "ttl": "365d", "keep_after_deploy": "1s"},
            # hashed names without the option: a 404 is a 404
            {"name": "no-keep", "match": {"path": r"^/nokeep/.*" + HASHED}, "ttl": "365d"},
            {"name": "hashed-assets", "match": {"path": HASHED}, "ttl": "365d",
             "response_cache_control": "public, max-age=31536000, immutable",
             "keep_after_deploy": "7d"},
            # /t/mutable?key=gone...: 410 from a scripted origin
            {"name": "api-keep", "match": {"path": "^/t/mutable$", "content_type": ["text/plain"]},
             "ttl": "365d", "keep_after_deploy": "7d"},
            {"name": "html", "match": {"content_type": ["text/html"]}, "ttl": "0s",
             "response_cache_control": "no-cache", "early_hints": True},
            {"name": "default", "ttl": "origin"},
        ],
    }
    listen_options = {"http2": True}

    @classmethod
    def setUpClass(cls):
        if H.DIRECT:
            raise unittest.SkipTest("needs freshcached (FRESHCACHE_TEST_DIRECT=1)")
        parent = tempfile.mkdtemp(prefix="fc-keep-")
        H._tmpdirs.append(parent)
        cls.addClassCleanup(shutil.rmtree, parent, True)
        cls.site = os.path.join(parent, "site")
        for d in ("assets", "short", "nokeep"):
            os.makedirs(os.path.join(cls.site, d))
        cls.origin_root = cls.site
        super().setUpClass()

    # -- tools ----------------------------------------------------------------

    def put(self, path, data):
        with open(os.path.join(self.site, path.lstrip("/")), "wb") as f:
            f.write(data)

    def remove(self, path):
        os.unlink(os.path.join(self.site, path.lstrip("/")))

    def bump(self, policy=None):
        st, body = self.proxy.admin("POST", "/purge/generation",
                                    {"policy": policy} if policy else None)
        self.assertEqual(st, 200, body)
        return body

    def metrics(self):
        st, text = self.proxy.admin("GET", "/metrics")
        self.assertEqual(st, 200)
        return text

    def daemon_log(self):
        with open(self.proxy.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def assertKept(self, resp, body):
        self.assertOk(resp, body)
        self.assertEqual(resp.header("Cache-Status"), "freshcache; hit; detail=kept-after-deploy",
                         resp)

    def assertMissed404(self, resp):
        self.assertEqual(resp.status, 404, resp)
        self.assertNotIn("kept-after-deploy", resp.header("Cache-Status") or "", resp)

    def store(self, path, body):
        """Upload `path` and get it stored; the second request is a hit."""
        self.put(path, body)
        r = self.get(path)
        self.assertOk(r, body)
        self.assertEqual(r.cache_status.get("stored"), True, r)
        self.assertHit(self.get(path))


# ---------------------------------------------------------------------------


class KeepAfterDeployTest(DeployKeepBase):

    def test_removed_asset_still_loads_for_the_old_page(self):
        old_js = b"console.log('release 1');\n" * 20
        new_js = b"console.log('release 2');\n" * 20
        self.put("/index.html", OLD_PAGE)
        self.assertOk(self.get("/"), OLD_PAGE)
        self.store(OLD_JS, old_js)
        before = metric(self.metrics(), "freshcache_kept_after_deploy_total")
        st, stats = self.proxy.admin("GET", "/stats")
        self.assertEqual(stats["kept_after_deploy"], before)

        # the deploy: new asset, new page, old asset gone, then the bump
        self.put(NEW_JS, new_js)
        self.put("/index.html", NEW_PAGE)
        self.remove(OLD_JS)
        self.bump()

        self.assertOk(self.get("/"), NEW_PAGE)
        r = self.get(NEW_JS)
        self.assertOk(r, new_js)
        self.assertEqual(r.cache_status.get("stored"), True, r)
        # a tab holding the old page asks for the old asset: the origin says
        # 404, the copy stored before the deploy answers
        self.origin.reset()
        r = self.get(OLD_JS)
        self.assertKept(r, old_js)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assertOriginCount(OLD_JS, 1)       # the origin was asked, and said 404
        # the copy is still not current: every request asks the origin first
        r = self.get(OLD_JS)
        self.assertKept(r, old_js)
        self.assertOriginCount(OLD_JS, 2)
        # conditionals are answered from the kept copy like from any other
        r = self.get(OLD_JS, headers={"If-None-Match": r.header("ETag")})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.cache_status.get("detail"), "kept-after-deploy", r)
        # HEAD too
        r = self.get(OLD_JS, method="HEAD")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(int(r.header("Content-Length")), len(old_js))

        # the generation sweep (every 100 ms) has been over it by now: still kept
        time.sleep(0.6)
        self.assertKept(self.get(OLD_JS), old_js)
        # HTTP/2 too
        if H.h2_available():
            r = H.h2_request(self.port, "GET", OLD_JS)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, old_js)
            self.assertEqual(r.header("cache-status"),
                             "freshcache; hit; detail=kept-after-deploy")

        served = 6 if H.h2_available() else 5
        text = self.metrics()
        self.assertEqual(metric(text, "freshcache_kept_after_deploy_total"), before + served, text)
        st, stats = self.proxy.admin("GET", "/stats")
        self.assertEqual(stats["kept_after_deploy"], before + served)
        self.assertRegex(self.daemon_log(),
                         r"info: kept-after-deploy: the origin answered 404 for \S*%s; served "
                         r"the copy stored \d+s ago, before the last deploy" % re.escape(OLD_JS))

        # the asset comes back at the origin (a rollback): the origin's copy
        # wins and replaces the kept one
        self.put(OLD_JS, b"rolled back\n")
        r = self.get(OLD_JS)
        self.assertOk(r, b"rolled back\n")
        self.assertEqual(r.cache_status.get("stored"), True, r)
        self.assertHit(self.get(OLD_JS))

    def test_without_a_bump_a_revalidation_404_serves_the_copy(self):
        body = b"same generation\n"
        path = "/assets/rv.2468ace0.js"
        self.store(path, body)
        self.remove(path)
        # no-cache from the client: a revalidation, the origin says 404
        r = self.get(path, headers={"Cache-Control": "no-cache"})
        self.assertKept(r, body)
        # and the copy is still a plain hit afterwards (it is current)
        self.assertHit(self.get(path))

    def test_410_is_a_removal_too(self):
        target = url("/t/mutable", key="gone", ct="text/plain")
        self.origin.set("gone", value="kept-value")
        r = self.get(target)
        self.assertOk(r, b"kept-value\n")
        self.bump()
        self.origin.set("gone", status=410)
        self.assertKept(self.get(target), b"kept-value\n")

    def test_clients_waiting_on_the_refetch_all_get_the_kept_copy(self):
        """The deploy's crowd: many tabs of the old page ask for the removed
        asset at once.  One request goes to the origin (the others wait on
        it, coalesced), the origin says 404, and every client gets the kept
        copy, not only the one whose request reached the origin."""
        target = url("/t/mutable", key="crowd", ct="text/plain", delay_ms=700)
        self.origin.set("crowd", value="crowd-v1")
        self.assertOk(self.get(target), b"crowd-v1\n")
        self.bump()
        self.origin.set("crowd", status=404)
        before = self.origin.count(target)
        results = [None] * 6

        def one(i):
            results[i] = self.get(target)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join(10)
        for r in results:
            self.assertKept(r, b"crowd-v1\n")
        self.assertEqual(self.origin.count(target), before + 1,
                         "the waiting clients asked the origin themselves")
        # after_purge: refetch (the default): without the old validators
        self.assertIsNone(H.req_header(self.origin.log(target)[-1], "If-None-Match"))

    def test_kept_copy_wins_over_negative_caching(self):
        # Issue 17's negative_ttl (default 10 s) would store the origin's
        # 404; a copy kept after a deploy wins instead, every time, and the
        # 404 never replaces it.
        target = url("/t/mutable", key="negkeep", ct="text/plain")
        self.origin.set("negkeep", value="kept")
        self.assertOk(self.get(target), b"kept\n")
        self.bump()
        self.origin.set("negkeep", status=404)
        for _ in range(3):
            self.assertKept(self.get(target), b"kept\n")
        self.assertEqual(self.origin.count(target), 4)     # asked every time
        # Without a kept copy the same 404 is stored for negative_ttl: the
        # second request is a hit that never reaches the origin.
        fresh = url("/t/mutable", key="negnew", ct="text/plain")
        self.origin.set("negnew", status=404)
        r = self.get(fresh)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.cache_status.get("stored"), True, r)
        r = self.get(fresh)
        self.assertEqual(r.status, 404, r)
        self.assertHit(r)
        self.assertEqual(self.origin.count(fresh), 1)

    def test_other_errors_are_not_masked(self):
        for status in (403, 500):
            key = "err%d" % status
            target = url("/t/mutable", key=key, ct="text/plain")
            self.origin.set(key, value="v")
            self.assertOk(self.get(target))
            self.bump()
            self.origin.set(key, status=status)
            r = self.get(target)
            self.assertEqual(r.status, status, r)
            self.assertNotIn("kept-after-deploy", r.header("Cache-Status") or "")

    def test_beyond_the_window_a_404_is_a_404(self):
        path = "/short/old.13579bdf.js"
        self.store(path, b"short-lived\n")
        self.bump()
        self.remove(path)
        time.sleep(2.2)             # past the 1 s window (whole seconds)
        self.assertMissed404(self.get(path))

    def test_policy_without_the_option_404s(self):
        path = "/nokeep/old.fdb97531.js"
        self.store(path, b"not kept\n")
        self.bump()
        self.remove(path)
        r = self.get(path)
        self.assertMissed404(r)
        # not even on a revalidation without a bump
        path2 = "/nokeep/rv.abcdef12.js"
        self.store(path2, b"not kept\n")
        self.remove(path2)
        self.assertMissed404(self.get(path2, headers={"Cache-Control": "no-cache"}))

    def test_a_purged_url_is_not_kept(self):
        path = "/assets/purged.0f0f0f0f.js"
        self.store(path, b"purged\n")
        st, body = self.proxy.admin("POST", "/purge", {"url": path})
        self.assertEqual((st, body), (200, {"purged": 1}))
        self.remove(path)
        self.assertMissed404(self.get(path))

    def test_a_policy_bump_keeps_too(self):
        path = "/assets/pol.11223344.js"
        self.store(path, b"policy bump\n")
        self.bump("hashed-assets")
        self.remove(path)
        self.assertKept(self.get(path), b"policy bump\n")


    def test_deploy_timeline(self):
        """Every generation change is a log line in one shape, and the
        time of the last one is a metric."""
        log = self.daemon_log()
        self.assertRegex(log, r"info: generation: global \d+ \(source: startup, from \S+; "
                              r"last changed (never|\d{4}-\d\d-\d\dT[0-9:]+Z)\)")
        t0 = time.time()
        g = self.bump()
        p = self.bump("html")
        log = self.daemon_log()
        self.assertIn("info: generation changed: global %d -> %d (source: admin)"
                      % (g["previous"], g["generation"]), log)
        self.assertIn("info: generation changed: policy html %d -> %d (source: admin)"
                      % (p["previous"], p["generation"]), log)
        m = re.search(r"^freshcache_generation_changed_timestamp_seconds ([0-9.]+)$",
                      self.metrics(), re.M)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(float(m.group(1)), int(t0))


# ---------------------------------------------------------------------------


class KeepAfterDeployRevalidateTest(DeployKeepBase):
    """after_purge: revalidate: the first request after the deploy sends
    the old validators, and requests read in the same pass of the loop
    join that revalidation (exchange.c revalidate()); its 404 gives every
    one of them the kept copy."""

    # one worker: a request joins only its own worker's revalidations
    config = dict(DeployKeepBase.config, cache={"after_purge": "revalidate"}, workers=1)

    def test_clients_joining_the_revalidation_all_get_the_kept_copy(self):
        if not H.h2_available():
            self.skipTest("python3-h2 missing (run under /usr/bin/python3)")
        target = url("/t/mutable", key="joined", ct="text/plain", etag=1, delay_ms=300)
        self.origin.set("joined", value="joined-v1")
        self.assertOk(self.get(target), b"joined-v1\n")
        self.bump()
        self.origin.set("joined", status=404)
        before = self.origin.count(target)
        # six streams in one write: read in one pass, one revalidation
        with H.H2Conn(self.port) as c:
            rs = c.read_all(c.send_requests("GET", [target] * 6))
        for r in rs:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"joined-v1\n")
            self.assertEqual(r.header("cache-status"), "freshcache; hit; detail=kept-after-deploy")
        self.assertEqual(self.origin.count(target), before + 1,
                         "the joined requests asked the origin themselves")
        sent = self.origin.log(target)[-1]
        self.assertIsNotNone(H.req_header(sent, "If-None-Match"), sent)


    def test_a_request_after_the_next_bump_does_not_join(self):
        """A revalidation sent before a bump answers for the release before
        it: a request after the bump never waits for it, though it would
        join one sent after (docs/deploying.md).  The first request's
        revalidation is under way when a second deploy bumps again: the
        request after that asks the origin itself."""
        target = url("/t/mutable", key="rebump", ct="text/plain", etag=1, delay_ms=800)
        self.origin.set("rebump", value="v1")
        self.assertOk(self.get(target), b"v1\n")
        self.bump()
        self.origin.set("rebump", status=404)
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", self.get(target)))
        t.start()
        deadline = time.monotonic() + 5
        while self.origin.count(target) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)        # its revalidation reached the origin
        self.bump()
        r = self.get(target)
        t.join(10)
        self.assertKept(first["r"], b"v1\n")
        self.assertKept(r, b"v1\n")
        self.assertOriginCount(target, 3)


class EarlyHintsTest(DeployKeepBase):

    def page(self, key, *links, ct="text/html"):
        return url("/t/mutable", key=key, ct=ct, etag=1, hdr=["Link:" + v for v in links])

    def links(self, fields):
        return [v for k, v in fields if k.lower() == "link"]

    def test_revalidation_sends_103_with_the_preloads(self):
        target = self.page("p1", PRELOAD, CANONICAL, MODULE + ", " + PRECONNECT)
        r = self.get(target)
        self.assertOk(r)
        self.assertEqual(r.interim, [], "nothing stored yet, nothing to hint: %r" % r)
        hints0 = metric(self.metrics(), "freshcache_early_hints_total")

        r = self.get(target)           # ttl 0s: a revalidation
        self.assertOk(r, b"1\n")
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
        self.assertEqual(r.interim, [103], r)
        self.assertEqual(self.links(r.interim_headers[0]), [PRELOAD, MODULE, PRECONNECT])
        self.assertEqual(len(r.interim_headers[0]), 3, r.interim_headers)
        # the final response still has every Link field, canonical included
        self.assertIn(CANONICAL, r.header("Link"))
        self.assertEqual(metric(self.metrics(), "freshcache_early_hints_total"), hints0 + 1)

        # a changed page (200 on the revalidation): hints from the copy
        # stored before, then the new page
        self.origin.set("p1", value="2")
        r = self.get(target)
        self.assertOk(r, b"2\n")
        self.assertEqual(r.interim, [103], r)
        self.assertEqual(r.cache_status.get("fwd-status"), 200, r)

        # the client's conditional is answered after the hints too
        etag = r.header("ETag")
        r = self.get(target, headers={"If-None-Match": etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.interim, [103], r)

    def test_over_http2(self):
        if not H.h2_available():
            self.skipTest("python3-h2 is not installed")
        target = self.page("p2", PRELOAD, CANONICAL)
        self.assertOk(self.get(target))
        with H.H2Conn(self.port) as c:
            r = c.request("GET", target)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"1\n")
        self.assertEqual(r.interim, [103], r)
        self.assertEqual(self.links(r.interim_headers[0]), [PRELOAD])

    def test_none_right_after_a_bump(self):
        target = self.page("p3", PRELOAD)
        self.assertOk(self.get(target))
        self.assertEqual(self.get(target).interim, [103])
        self.bump()
        # the stored page names the previous release's assets: no hints
        r = self.get(target)
        self.assertOk(r)
        self.assertEqual(r.interim, [], r)
        self.assertEqual(r.cache_status.get("stored"), True, r)
        # once the new release's page is stored, its links are hinted
        self.assertEqual(self.get(target).interim, [103])
        # a bump of the html policy alone is a bump too
        self.bump("html")
        self.assertEqual(self.get(target).interim, [])

    def test_none_to_http10(self):
        target = self.page("p4", PRELOAD)
        self.assertOk(self.get(target))
        r = self.get(target, version="HTTP/1.0")
        self.assertOk(r, b"1\n")
        self.assertEqual(r.interim, [], r)

    def test_none_without_the_option_or_the_links(self):
        # text/plain falls under default: no early_hints
        target = self.page("p5", PRELOAD, ct="text/plain")
        self.assertOk(self.get(target))
        r = self.get(target, headers={"Cache-Control": "no-cache"})
        self.assertOk(r)
        self.assertEqual(r.interim, [], r)
        # html without a preload among its links
        target = self.page("p6", CANONICAL)
        self.assertOk(self.get(target))
        r = self.get(target)
        self.assertOk(r)
        self.assertEqual(r.interim, [], r)

    def test_keep_alive_after_hints(self):
        """Several requests on one connection, each with its 103: the
        framing holds."""
        target = self.page("p7", PRELOAD)
        self.assertOk(self.get(target))
        with self.conn() as c:
            for _ in range(3):
                r = c.request("GET", target)
                self.assertOk(r, b"1\n")
                self.assertEqual(r.interim, [103], r)


if __name__ == "__main__":
    H.main()
