#!/usr/bin/env python3
"""RFC 9111 caching semantics: freshness, revalidation (304 merge), Vary,
what must not be stored, and client conditionals answered from the cache."""

import datetime
import email.utils
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_callbacks import RawOrigin, RawOriginCase  # noqa: E402
from harness import expected_body, origin_etag, req_header, url  # noqa: E402

LM = "Tue, 14 Nov 2023 22:13:20 GMT"    # lm=1700000000


class FreshnessTest(H.ProxyTestCase):

    def test_stale_revalidated_with_304(self):
        seed = self.uniq()
        body = expected_body(3000, seed)
        # the 304 carries a longer max-age: merged, it makes the entry fresh again
        t = url("/t/body", size=3000, seed=seed, etag=1, cc="max-age=1", ct="text/plain",
                hdr304="Cache-Control:max-age=60")
        r1 = self.get(t)
        self.assertOk(r1, body)
        self.assertTrue(r1.cache_status.get("stored"), r1)
        self.assertEqual(r1.header("X-Origin-Seq"), "1")
        time.sleep(2.1)
        r2 = self.get(t)
        self.assertOk(r2, body)
        cs = r2.cache_status
        self.assertEqual(cs.get("fwd"), "stale", r2)
        self.assertEqual(cs.get("fwd-status"), 304, r2)
        self.assertOriginCount(t, 2)
        sent = self.origin.log(t)[1]
        self.assertEqual(req_header(sent, "If-None-Match"), origin_etag(body),
                         "revalidation must send the origin's own ETag: %r" % sent)
        # headers of the 304 replace the stored ones
        self.assertEqual(r2.header("X-Origin-Seq"), "2", r2)
        self.assertEqual(r2.header("Cache-Control"), "max-age=60", r2)
        self.assertEqual(r2.header("Content-Type"), "text/plain", r2)
        r3 = self.get(t)
        self.assertOk(r3, body)
        self.assertHit(r3)
        self.assertEqual(r3.header("X-Origin-Seq"), "2", r3)
        self.assertOriginCount(t, 2)
        # same bytes, same ETag, whoever sent one
        etags = {r.header("ETag") for r in (r1, r2, r3)} - {None}
        self.assertIsNotNone(r3.header("ETag"), r3)
        self.assertEqual(len(etags), 1, "ETag changed although the bytes did not: %r" % etags)

    def test_stale_revalidated_with_last_modified(self):
        seed = self.uniq()
        t = url("/t/body", size=100, seed=seed, lm=1700000000, cc="max-age=1")
        self.assertOk(self.get(t), expected_body(100, seed))
        time.sleep(2.1)
        r = self.get(t)
        self.assertOk(r, expected_body(100, seed))
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
        sent = self.origin.log(t)[1]
        self.assertEqual(req_header(sent, "If-Modified-Since"), LM, sent)

    def test_stale_replaced_by_new_content(self):
        key = self.uniq()
        # max-age=2: with whole-second Dates the age right after storing can
        # already be 1
        t = url("/t/mutable", key=key, etag=1, cc="max-age=2")
        r1 = self.get(t)
        self.assertOk(r1, b"1\n")
        self.origin.set(key, "2")
        r = self.get(t)
        self.assertOk(r, b"1\n")        # still fresh: the cache answers
        self.assertHit(r)
        time.sleep(3.1)
        r2 = self.get(t)
        self.assertOk(r2, b"2\n")
        self.assertEqual(r2.cache_status.get("fwd"), "stale", r2)
        self.assertIsNotNone(req_header(self.origin.log(t)[-1], "If-None-Match"))
        self.assertOriginCount(t, 2)
        r3 = self.get(t)
        self.assertOk(r3, b"2\n")
        self.assertHit(r3)
        self.assertIsNotNone(r.header("ETag"), r)
        self.assertIsNotNone(r3.header("ETag"), r3)
        self.assertNotEqual(r3.header("ETag"), r.header("ETag"), "new bytes, same ETag")
        self.assertOriginCount(t, 2)

    def test_no_cache_response_revalidated_every_time(self):
        seed = self.uniq()
        t = url("/t/body", size=50, seed=seed, etag=1, cc="max-age=60, no-cache")
        for _ in range(3):
            self.assertOk(self.get(t), expected_body(50, seed))
        self.assertOriginCount(t, 3)
        for sent in self.origin.log(t)[1:]:
            self.assertEqual(req_header(sent, "If-None-Match"), origin_etag(expected_body(50, seed)))

    def test_max_age_zero_not_served_from_cache(self):
        seed = self.uniq()
        t = url("/t/body", size=50, seed=seed, cc="max-age=0")
        for _ in range(2):
            r = self.get(t)
            self.assertOk(r, expected_body(50, seed))
            self.assertNotHit(r)
        self.assertOriginCount(t, 2)

    def test_expires_in_the_past(self):
        seed = self.uniq()
        t = url("/t/body", size=50, seed=seed, expires="past")
        self.get(t)
        self.assertNotHit(self.get(t))
        self.assertOriginCount(t, 2)

    def test_s_maxage_overrides_max_age(self):
        seed = self.uniq()
        t = url("/t/body", size=50, seed=seed, cc="max-age=0, s-maxage=60")
        self.get(t)
        r = self.get(t)
        self.assertOk(r, expected_body(50, seed))
        self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_404_with_max_age_is_cached(self):
        seed = self.uniq()
        t = url("/t/body", size=12, seed=seed, status=404, cc="max-age=60")
        self.get(t)
        r = self.get(t)
        self.assertEqual(r.status, 404)
        self.assertBody(r, expected_body(12, seed))
        self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_500_without_freshness_not_cached(self):
        seed = self.uniq()
        t = url("/t/body", size=12, seed=seed, status=500)
        for _ in range(2):
            self.assertEqual(self.get(t).status, 500)
        self.assertOriginCount(t, 2)


class NotStoredTest(H.ProxyTestCase):

    def check_not_stored(self, t, body, headers=None, strict=True):
        for i in range(2):
            r = self.get(t, headers)
            self.assertOk(r, body)
            self.assertNotHit(r)
            if strict:      # MUST NOT store: not even "stored" in Cache-Status
                self.assertFalse(r.cache_status.get("stored"), "response %d: %r" % (i, r))
        self.assertOriginCount(t, 2)

    def test_no_store(self):
        seed = self.uniq()
        self.check_not_stored(url("/t/body", size=40, seed=seed, cc="no-store"),
                              expected_body(40, seed))

    def test_no_store_with_max_age(self):
        seed = self.uniq()
        self.check_not_stored(url("/t/body", size=40, seed=seed, cc="max-age=60, no-store"),
                              expected_body(40, seed))

    def test_private(self):
        seed = self.uniq()
        self.check_not_stored(url("/t/body", size=40, seed=seed, cc="private, max-age=60"),
                              expected_body(40, seed))

    def test_authorization(self):
        seed = self.uniq()
        self.check_not_stored(url("/t/body", size=40, seed=seed, cc="max-age=60"),
                              expected_body(40, seed), {"Authorization": "Bearer abc"})

    def test_authorized_request_not_served_from_shared_entry(self):
        """The response to a request with Authorization is not stored, so a
        later anonymous request cannot get it (RFC 9111 section 3.5)."""
        seed = self.uniq()
        t = url("/t/body", size=40, seed=seed, cc="max-age=60")
        self.get(t, {"Authorization": "Bearer abc"})
        r = self.get(t)
        self.assertNotHit(r)
        self.assertOriginCount(t, 2)

    def test_no_freshness_information(self):
        """No Cache-Control, Expires or Last-Modified: nothing to reuse."""
        seed = self.uniq()
        self.check_not_stored(url("/t/body", size=40, seed=seed), expected_body(40, seed),
                              strict=False)


class VaryTest(H.ProxyTestCase):

    def test_vary_variants(self):
        n = self.uniq()
        t = url("/t/vary", n=n)
        en = {"Accept-Language": "en"}
        fr = {"Accept-Language": "fr"}
        r = self.get(t, en)
        self.assertOk(r, b"variant Accept-Language=en\n")
        r = self.get(t, fr)
        self.assertOk(r, b"variant Accept-Language=fr\n")
        self.assertNotHit(r)
        r = self.get(t)
        self.assertOk(r, b"variant Accept-Language=\n")
        self.assertNotHit(r)
        self.assertOriginCount(t, 3)
        for hdrs, expect in ((en, b"en"), (fr, b"fr"), (None, b""), (en, b"en")):
            r = self.get(t, hdrs)
            self.assertOk(r, b"variant Accept-Language=" + expect + b"\n")
            self.assertHit(r)
            self.assertEqual(r.header("Vary"), "Accept-Language")
        self.assertOriginCount(t, 3)
        r = self.get(t, {"Accept-Language": "de"})
        self.assertOk(r, b"variant Accept-Language=de\n")
        self.assertNotHit(r)
        self.assertOriginCount(t, 4)

    def test_vary_on_other_header(self):
        t = url("/t/vary", on="X-Flavour", n=self.uniq())
        self.assertOk(self.get(t, {"X-Flavour": "a"}), b"variant X-Flavour=a\n")
        self.assertOk(self.get(t, {"X-Flavour": "b"}), b"variant X-Flavour=b\n")
        r = self.get(t, {"X-Flavour": "a", "Accept-Language": "fr"})
        self.assertOk(r, b"variant X-Flavour=a\n")
        self.assertHit(r)
        self.assertOriginCount(t, 2)

    def test_vary_star_never_served_from_cache(self):
        t = url("/t/vary", vary="*", n=self.uniq())
        for _ in range(3):
            r = self.get(t, {"Accept-Language": "en"})
            self.assertOk(r, b"variant Accept-Language=en\n")
            self.assertNotHit(r)
        self.assertOriginCount(t, 3)


class ClientConditionalTest(H.ProxyTestCase):

    def stored(self, **params):
        """Store a response; returns (target, a cache hit for it, body).  The
        validators are taken from the hit: a streamed miss may not know the
        content hash yet when its headers go out."""
        seed = self.uniq()
        t = url("/t/body", size=2000, seed=seed, cc="max-age=60", **params)
        self.assertOk(self.get(t), expected_body(2000, seed))
        r = self.get(t)
        self.assertOk(r, expected_body(2000, seed))
        self.assertHit(r)
        return t, r, expected_body(2000, seed)

    def test_if_none_match_answered_from_cache(self):
        t, r1, body = self.stored(etag=1)
        etag = r1.header("ETag")
        self.assertIsNotNone(etag, r1)
        r = self.get(t, {"If-None-Match": etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("ETag"), etag)
        self.assertHit(r)
        r = self.get(t, {"If-None-Match": '"something-else", ' + etag})
        self.assertEqual(r.status, 304, r)
        if etag.startswith('"'):
            r = self.get(t, {"If-None-Match": "W/" + etag})      # weak comparison
            self.assertEqual(r.status, 304, r)
        r = self.get(t, {"If-None-Match": '"something-else"'})
        self.assertOk(r, body)
        self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_if_none_match_on_keep_alive_connection(self):
        t, r1, body = self.stored(etag=1)
        self.assertIsNotNone(r1.header("ETag"), r1)
        with self.conn() as c:
            r = c.request("GET", t, {"If-None-Match": r1.header("ETag")})
            self.assertEqual(r.status, 304)
            self.assertOk(c.request("GET", t), body)
        self.assertOriginCount(t, 1)

    def test_content_hash_etag_without_origin_etag(self):
        """cache.etag: content-hash — a strong ETag even if the origin sent none."""
        t, r1, body = self.stored()
        etag = r1.header("ETag")
        self.assertIsNotNone(etag, "no ETag under cache.etag: content-hash: %r" % r1)
        self.assertTrue(etag.startswith('"'), "not a strong ETag: %r" % etag)
        self.assertEqual(self.get(t, {"If-None-Match": etag}).status, 304)
        self.assertOriginCount(t, 1)

    def test_if_modified_since_answered_from_cache(self):
        t, r1, body = self.stored(lm=1700000000)
        # the proxy may pass the origin's Last-Modified or set its own; either
        # way a client's If-Modified-Since is evaluated against what it sent
        lm = r1.header("Last-Modified")
        self.assertIsNotNone(lm, "Last-Modified dropped: %r" % r1)
        r = self.get(t, {"If-Modified-Since": lm})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        earlier = email.utils.format_datetime(
            email.utils.parsedate_to_datetime(lm) - datetime.timedelta(days=1), usegmt=True)
        r = self.get(t, {"If-Modified-Since": earlier})
        self.assertOk(r, body)
        self.assertOriginCount(t, 1)

    def test_if_match(self):
        t, r1, body = self.stored(etag=1)
        self.assertIsNotNone(r1.header("ETag"), r1)
        r = self.get(t, {"If-Match": '"does-not-match"'})
        self.assertEqual(r.status, 412, r)
        r = self.get(t, {"If-Match": r1.header("ETag")})
        self.assertOk(r, body)


class StaleWhileRevalidateTest(H.ProxyTestCase):
    """RFC 5861 §3: within stale-while-revalidate a stale copy is answered
    at once while one background request refreshes it; past the window, or
    when the response or the request asks for revalidation, the request
    waits for the origin as usual.  The origin answers after ORIGIN_DELAY
    seconds, so a response that waited for it would carry the new value."""

    ORIGIN_DELAY = 1.0
    config = {"policies": [
        {"name": "swr-policy", "match": {"path": "/t/body"}, "ttl": "1s",
         "stale_while_revalidate": "30s"},
        {"name": "default", "ttl": "origin"},
    ]}

    def mutable(self, cc, delay=True):
        key = self.uniq()
        params = dict(key=key, etag=1, cc=cc)
        if delay:
            params["delay_ms"] = int(self.ORIGIN_DELAY * 1000)
        return key, url("/t/mutable", **params)

    def wait_for_body(self, t, body, limit=10.0):
        deadline = time.monotonic() + limit
        while True:
            r = self.get(t)
            if r.body == body or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def test_stale_answered_at_once_one_background_refresh(self):
        # max-age=3: the refreshed copy arrives ORIGIN_DELAY (plus up to 1 s
        # of Date rounding) old, and must still be fresh then
        key, t = self.mutable("max-age=3, stale-while-revalidate=30")
        self.assertOk(self.get(t), b"1\n")
        self.origin.set(key, "2")
        time.sleep(4.1)
        # The origin holds the refresh for ORIGIN_DELAY: both answers come
        # from the stale copy, and the second starts no second refresh.
        for _ in range(2):
            r = self.get(t)
            self.assertOk(r, b"1\n")
            self.assertTrue(r.cache_status.get("hit"), r)
            self.assertEqual(r.cache_status.get("detail"), "stale-while-revalidate", r)
        self.assertOriginCount(t, 2)
        refresh = self.origin.log(t)[1]
        self.assertIsNotNone(req_header(refresh, "If-None-Match"),
                             "the refresh is a conditional request: %r" % refresh)
        r = self.wait_for_body(t, b"2\n")
        self.assertOk(r, b"2\n")
        self.assertHit(r)
        self.assertEqual(self.origin.count(t), 2)

    def test_refresh_by_304_makes_the_copy_fresh(self):
        # max-age=2: the merged copy may be 1 s old at once (whole-second Dates)
        _, t = self.mutable("max-age=2, stale-while-revalidate=30", delay=False)
        r1 = self.get(t)
        self.assertOk(r1, b"1\n")
        time.sleep(3.1)
        r = self.get(t)
        self.assertOk(r, b"1\n")
        self.assertEqual(r.cache_status.get("detail"), "stale-while-revalidate", r)
        deadline = time.monotonic() + 5
        while self.origin.count(t) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)     # the 304 merged
        r = self.get(t)
        self.assertOk(r, b"1\n")
        self.assertHit(r)
        self.assertIsNone(r.cache_status.get("detail"), r)
        self.assertEqual(r.header("ETag"), r1.header("ETag"))
        self.assertOriginCount(t, 2)

    def test_past_the_window_waits_for_the_origin(self):
        key, t = self.mutable("max-age=1, stale-while-revalidate=1")
        self.assertOk(self.get(t), b"1\n")
        self.origin.set(key, "2")
        time.sleep(3.2)     # 2 s and more past expiry: outside the 1 s window
        r = self.get(t)
        self.assertOk(r, b"2\n")
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertOriginCount(t, 2)

    def test_must_revalidate_wins(self):
        key, t = self.mutable("max-age=1, stale-while-revalidate=30, must-revalidate")
        self.assertOk(self.get(t), b"1\n")
        self.origin.set(key, "2")
        time.sleep(2.1)
        r = self.get(t)
        self.assertOk(r, b"2\n")
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)

    def test_request_no_cache_waits_for_the_origin(self):
        key, t = self.mutable("max-age=1, stale-while-revalidate=30")
        self.assertOk(self.get(t), b"1\n")
        self.origin.set(key, "2")
        time.sleep(2.1)
        r = self.get(t, headers={"Cache-Control": "no-cache"})
        self.assertOk(r, b"2\n")
        self.assertIsNone(r.cache_status.get("detail"), r)

    def test_policy_window_without_origin_directive(self):
        """The policy's stale_while_revalidate applies to responses that
        carry no such directive (docs/freshcache.yaml.5.scd)."""
        seed = self.uniq()
        t = url("/t/body", size=200, seed=seed, etag=1, cc="max-age=600",
                delay_ms=int(self.ORIGIN_DELAY * 1000))
        self.assertOk(self.get(t), expected_body(200, seed))
        time.sleep(2.1)     # the policy's ttl (1s) is over
        r = self.get(t)
        self.assertOk(r, expected_body(200, seed))
        self.assertEqual(r.cache_status.get("detail"), "stale-while-revalidate", r)
        self.assertOriginCount(t, 2)



class StaleIfErrorTest(H.ProxyTestCase):
    """A stale copy standing in for a failing origin (RFC 5861 §4, a
    policy's stale_if_error), and the directives that forbid it (RFC 9111
    §4.2.4): must-revalidate, proxy-revalidate and s-maxage always;
    no-cache unless a policy has taken the copy's freshness with a ttl of
    its own (the html policy of docs/freshcache.yaml.5.scd: ttl 0s,
    stale_if_error 1h).  A policy with ttl: origin leaves the origin its
    no-cache.  The origin fails with a 503 (/__set status)."""

    config = {"policies": [
        {"name": "html", "match": {"content_type": ["text/html"]}, "ttl": "0s",
         "stale_if_error": "1h"},
        {"name": "default", "ttl": "origin", "stale_if_error": "1h"},
    ]}

    def stored(self, cc, ct="text/plain"):
        key = self.uniq()
        t = url("/t/mutable", key=key, etag=1, cc=cc, ct=ct)
        self.assertOk(self.get(t), b"1\n")
        return key, t

    def assertStaleServed(self, t):
        r = self.get(t)
        self.assertOk(r, b"1\n")
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertEqual(r.cache_status.get("detail"), "stale-if-error", r)

    def assertErrorPassed(self, t):
        r = self.get(t)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.cache_status.get("fwd-status"), 503, r)
        self.assertIsNone(r.cache_status.get("detail"), r)

    def test_which_stale_copies_stand_in(self):
        expired = {
            "plain": self.stored("max-age=1"),
            "must-revalidate": self.stored("max-age=1, must-revalidate"),
            "proxy-revalidate": self.stored("max-age=1, proxy-revalidate"),
            "s-maxage": self.stored("s-maxage=1"),
        }
        no_cache_origin_ttl = self.stored("max-age=600, no-cache")
        no_cache_policy_ttl = self.stored("max-age=600, no-cache", ct="text/html")
        time.sleep(2.1)         # the max-age=1 copies are stale
        for key, _ in list(expired.values()) + [no_cache_origin_ttl, no_cache_policy_ttl]:
            self.origin.set(key, status=503)
        with self.subTest("expired, nothing forbids it"):
            key, t = expired["plain"]
            self.assertStaleServed(t)
            # the origin's 503 (max-age=1: storable) did not replace the copy
            self.assertStaleServed(t)
            self.origin.set(key, status=200)
            r = self.get(t)
            self.assertOk(r, b"1\n")
            self.assertEqual(r.cache_status.get("fwd-status"), 304, r)
        for directive in ("must-revalidate", "proxy-revalidate", "s-maxage"):
            with self.subTest(directive):
                self.assertErrorPassed(expired[directive][1])
        with self.subTest("no-cache, ttl: origin"):
            self.assertErrorPassed(no_cache_origin_ttl[1])
        with self.subTest("no-cache, the policy's ttl"):
            self.assertStaleServed(no_cache_policy_ttl[1])


    def test_background_refresh_meeting_a_503_keeps_the_copy(self):
        """A stale-while-revalidate refresh answered with a storable 503:
        the copy stays (the next requests are served it and refresh again),
        and the origin's recovery replaces it."""
        key, t = self.stored("max-age=1, stale-while-revalidate=30")
        time.sleep(1.5)
        self.origin.set(key, status=503)
        for _ in range(3):
            r = self.get(t)
            self.assertOk(r, b"1\n")
            self.assertEqual(r.cache_status.get("detail"), "stale-while-revalidate", r)
            time.sleep(0.3)     # the background refresh met the 503
        self.assertGreaterEqual(self.origin.count(t), 3)    # each one refreshed again
        self.origin.set(key, value="2", status=200)
        r = self.wait_for_body(t, b"2\n")
        self.assertOk(r, b"2\n")

    wait_for_body = StaleWhileRevalidateTest.wait_for_body


class OnceOrigin(RawOrigin):
    """The first request for a path is answered; later ones get the
    connection closed without a response."""
    ANSWERS = {"/once": b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1, must-revalidate"
                        b"\r\nETag: \"v1\"\r\nContent-Length: 3\r\n\r\nv1\n"}

    def __init__(self):
        self.seen = set()
        super().__init__(delay=0.0)

    def answer(self, c):
        with c:
            target = self.read_target(c)
            if target is not None and target not in self.seen:
                self.seen.add(target)
                c.sendall(self.ANSWERS[target.split("?")[0]])


class FailedRevalidationStatusTest(RawOriginCase):
    """An origin that stops answering (closes without a response) while a
    must-revalidate copy is stale: the client gets a 502, never the copy
    (RFC 9111 §5.2.2.2), and its Cache-Status says the cache went forward
    for a stale copy, not for a miss (RFC 9211 §2.2: fwd=stale)."""
    config = {"workers": 1,
              "policies": [{"name": "default", "ttl": "origin", "stale_if_error": "1h"}]}
    raw_origin = OnceOrigin

    def test_502_says_fwd_stale(self):
        r = self.get("/once?a")
        self.assertOk(r, b"v1\n")
        time.sleep(2.1)
        r = self.get("/once?a")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.cache_status.get("fwd"), "stale", r)
        self.assertIsNone(r.cache_status.get("detail"), r)


if __name__ == "__main__":
    H.main()
