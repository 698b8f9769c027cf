#!/usr/bin/env python3
"""Cache poisoning and deception (issue 17), played as an attacker would
against the shipped policies (conf/freshcache.yaml, spliced in as written)
and an origin that behaves like common web frameworks:

- web cache deception: /account/settings/x-12345678.css answered with the
  logged-in user's page is passed through, not stored; counted and logged
  once per URL;
- cache-poisoned denial of service: a 405 for X-HTTP-Method-Override and a
  404 for a hashed asset not deployed yet are kept negative_ttl at most;
- unkeyed forwarding headers: a client's X-Forwarded-Host (and the other
  forwarding fields) never reach the origin unless the peer is in
  trusted_proxies;
- Authorization under every shipped policy: stored only as RFC 9111 §3.5
  allows, the policies' ttl overrides included.

The framework-like origin is this file's own (http.server on loopback);
test-origin still runs (the harness starts it) but is not used."""

import http.server
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

CONF = os.path.join(H.REPO, "conf", "freshcache.yaml")


class FrameworkOrigin:
    """What the issue's attacker met.  GET only; counts requests per path;
    /__deploy makes the pending asset exist; /__reset forgets counts."""

    def __init__(self):
        self.counts = {}
        self.seen = []              # (path, headers) of every request
        self.deployed = False
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                origin.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def headers_seen(self, path):
        with self.lock:
            return [h for p, h in self.seen if p == path]

    def handle(self, rq):
        path = rq.path
        if path == "/__deploy":
            self.deployed = True
            return self.send(rq, 200, "text/plain", b"ok\n")
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            self.seen.append((path, [(k, v) for k, v in rq.headers.items()]))
        base, _, query = path.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        cookie = rq.headers.get("Cookie", "")
        user = cookie.split("session=", 1)[1].split(";")[0] if "session=" in cookie else "anonymous"
        if base.startswith("/account/"):
            # A framework route that ignores the suffix: the account page,
            # no Cache-Control (frameworks rarely send one).
            body = ("<html><body>%s's account; api key: key-of-%s</body></html>\n"
                    % (user, user)).encode()
            return self.send(rq, 200, "text/html; charset=utf-8", body)
        if base.startswith("/static/"):
            if rq.headers.get("X-HTTP-Method-Override"):
                # the framework honours the override, and DELETE is not allowed
                return self.send(rq, 405, "text/plain", b"method not allowed\n",
                                 [("Allow", "GET, HEAD")])
            if "/new." in base and not self.deployed:
                return self.send(rq, 404, "text/plain", b"not found\n")
            ct = "text/css" if base.endswith(".css") else "application/javascript"
            return self.send(rq, 200, ct, b"/* asset %s */\n" % base.encode(),
                             [("Cache-Control", "public, max-age=31536000")])
        if base.startswith("/api/"):
            # Absolute URLs from the forwarding headers, as Rails, Django
            # and Symfony build them behind a proxy.
            proto = rq.headers.get("X-Forwarded-Proto", "http")
            host = rq.headers.get("X-Forwarded-Host") or rq.headers.get("Host", "")
            port = rq.headers.get("X-Forwarded-Port")
            if port:
                host = host.split(":")[0] + ":" + port
            body = json.dumps({"script": "%s://%s/static/app.js" % (proto, host)}).encode()
            return self.send(rq, 200, "application/json", body,
                             [("Cache-Control", "max-age=60")])
        if base.startswith("/echo"):
            body = json.dumps([[k, v] for k, v in rq.headers.items()]).encode()
            return self.send(rq, 200, "application/json", body, [("Cache-Control", "no-store")])
        if base.startswith("/auth/"):
            # Per user content; caching headers from the query.
            who = rq.headers.get("Authorization", "none")
            extra = [("Cache-Control", params["cc"].replace("+", " ").replace("%2C", ","))] \
                if "cc" in params else []
            return self.send(rq, int(params.get("status", "200")),
                             params.get("ct", "text/plain").replace("%2F", "/"),
                             ("for %s\n" % who).encode(), extra)
        return self.send(rq, 404, "text/plain", b"no route\n")

    @staticmethod
    def send(rq, status, ct, body, extra=()):
        rq.send_response(status)
        rq.send_header("Content-Type", ct)
        rq.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            rq.send_header(k, v)
        rq.end_headers()
        rq.wfile.write(body)


def shipped_policies():
    """conf/freshcache.yaml's policies section, as written (it ends the file)."""
    with open(CONF, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^policies:\n", text, re.M)
    assert m, "conf/freshcache.yaml has no policies section"
    return text[m.start():]


class PoisonTestCase(H.ProxyTestCase):
    """The framework origin in front; subclasses choose the policies."""
    shipped = False         # use conf/freshcache.yaml's policies verbatim

    @classmethod
    def setUpClass(cls):
        cls.app = FrameworkOrigin()
        cls.origin_port = cls.app.port
        try:
            super().setUpClass()
        finally:
            cls.addClassCleanup(cls.app.stop)
        if cls.shipped:
            cfg = dict(cls.proxy.config)
            cfg.pop("policies", None)
            cls.proxy.stop()
            with open(cls.proxy.config_path, "w") as f:
                f.write(H.to_yaml(cfg) + "\n" + shipped_policies())
            cls.proxy.start()

    def metric(self, name):
        status, text = self.proxy.admin("GET", "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
        self.assertIsNotNone(m, "%s not in /metrics" % name)
        return int(m.group(1))

    def stored(self, r):
        return bool(r.cache_status.get("stored"))


class ShippedPoliciesTest(PoisonTestCase):
    shipped = True

    # -- 1. web cache deception ---------------------------------------------

    def test_deception_not_stored(self):
        t = "/account/settings/x-%s.css" % self.uniq_hex()
        before = self.metric("freshcache_deception_refused_total")
        victim = self.get(t, {"Cookie": "session=alice"})
        self.assertOk(victim)
        self.assertIn(b"key-of-alice", victim.body)
        self.assertFalse(self.stored(victim), victim)
        attacker = self.get(t)
        self.assertOk(attacker)
        self.assertNotIn(b"alice", attacker.body, "the victim's page was served from the cache")
        self.assertNotHit(attacker)
        self.assertEqual(self.app.count(t), 2)
        self.assertEqual(self.metric("freshcache_deception_refused_total"), before + 2)
        self.assertEqual(self.admin_json("GET", "/stats")["deception_refused"], before + 2)
        # logged at warning level, once for the URL
        log = open(self.proxy.log_path, encoding="utf-8", errors="replace").read()
        lines = [ln for ln in log.splitlines() if t in ln]
        self.assertEqual(len(lines), 1, "expected one warning for %s:\n%s" % (t, log[-3000:]))
        self.assertIn("web cache deception", lines[0])
        self.assertIn("hashed-assets", lines[0])
        self.assertIn("text/html", lines[0])

    def test_real_asset_still_stored(self):
        t = "/static/app.%s.css" % self.uniq_hex()
        self.assertOk(self.get(t))
        r = self.get(t)
        self.assertOk(r)
        self.assertHit(r)
        self.assertEqual(r.header("Content-Type"), "text/css")
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assertEqual(self.app.count(t), 1)

    # -- 2. cache-poisoned denial of service ------------------------------

    def test_method_override_405_not_kept_for_the_assets_ttl(self):
        t = "/static/app.%s.css" % self.uniq_hex()
        r = self.get(t, {"X-HTTP-Method-Override": "DELETE"})
        self.assertEqual(r.status, 405, r)
        # The 405 page is no stylesheet: under the path-matched policy it is
        # not stored at all (the deception check covers error pages too:
        # frameworks render them with who is logged in).  Never sent on
        # with the assets' year-long Cache-Control either.
        self.assertFalse(self.stored(r), r)
        self.assertNotIn("31536000", r.header("Cache-Control") or "", r)
        after = self.get(t)
        self.assertOk(after)
        self.assertEqual(after.header("Content-Type"), "text/css")
        self.assertEqual(self.app.count(t), 2)

    def test_pre_deploy_404_not_kept(self):
        t = "/static/new.%s.js" % self.uniq_hex()
        r = self.get(t)
        self.assertEqual(r.status, 404, r)
        self.assertFalse(self.stored(r), r)
        self.assertNotIn("31536000", r.header("Cache-Control") or "", r)
        self.assertEqual(H.request(self.app.port, "GET", "/__deploy").status, 200)
        r = self.get(t)                     # the deploy reached the origin: at once
        self.assertOk(r)
        self.assertEqual(self.app.count(t), 2)

    def test_404_under_default_policy_gets_negative_ttl(self):
        # default (ttl: origin), a 404 page without Cache-Control: kept for
        # the default negative_ttl (10 s), not heuristically for a day
        t = "/nowhere-%s" % self.uniq_hex()
        r = self.get(t)
        self.assertEqual(r.status, 404, r)
        self.assertTrue(self.stored(r), r)
        r = self.get(t)
        self.assertEqual(r.status, 404, r)
        self.assertHit(r)
        self.assertEqual(self.app.count(t), 1)

    # -- 3. unkeyed forwarding headers -------------------------------------

    def test_forwarded_host_does_not_poison(self):
        t = "/api/config-%s" % self.uniq_hex()
        r = self.get(t, {"Host": "www.example.test", "X-Forwarded-Host": "evil.example",
                         "X-Forwarded-Proto": "gopher", "X-Forwarded-Port": "6666",
                         "Forwarded": "host=evil.example;proto=https"})
        self.assertOk(r)
        self.assertEqual(json.loads(r.body)["script"], "http://www.example.test/static/app.js")
        victim = self.get(t, {"Host": "www.example.test"})
        self.assertHit(victim)
        self.assertNotIn(b"evil", victim.body)

    def test_headers_that_reach_the_origin(self):
        t = "/echo-%s" % self.uniq_hex()
        sent = {
            "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "8443", "X-Forwarded-For": "203.0.113.9",
            "Forwarded": "for=203.0.113.9;host=evil.example", "X-Original-URL": "/admin",
            "X-Rewrite-URL": "/admin", "X-Forwarded-Scheme": "nothttp",
            "X-Forwarded-Prefix": "/evil", "X-Host": "evil.example", "X-Real-IP": "203.0.113.9",
            "X-Forwarded-Server": "evil.example", "X-Forwarded-Ssl": "on",
            "Front-End-Https": "on", "X-Original-Host": "evil.example",
            "X-Custom": "kept", "Accept-Language": "fr",
        }
        r = self.get(t, sent)
        self.assertOk(r)
        got = {}
        for k, v in json.loads(r.body):
            got.setdefault(k.lower(), []).append(v)
        for name in ["x-forwarded-host", "x-forwarded-port", "forwarded", "x-original-url",
                     "x-rewrite-url", "x-forwarded-scheme", "x-forwarded-prefix", "x-host",
                     "x-real-ip", "x-forwarded-server", "x-forwarded-ssl", "front-end-https",
                     "x-original-host"]:
            self.assertNotIn(name, got, "%s reached the origin: %r" % (name, got))
        self.assertEqual(got["x-forwarded-for"], ["127.0.0.1"], got)
        self.assertEqual(got["x-forwarded-proto"], ["http"], got)
        self.assertEqual(got["x-custom"], ["kept"])
        self.assertEqual(got["accept-language"], ["fr"])
        self.assertEqual(got["via"], ["1.1 freshcache"])

    # -- 4. Authorization under every shipped policy -----------------------

    def auth_get(self, t, user):
        return self.get(t, {"Authorization": "Bearer %s" % user})

    def check_not_shared(self, t):
        """alice's response must never reach bob or an anonymous client."""
        a = self.auth_get(t, "alice")
        self.assertIn(b"alice", a.body)
        self.assertFalse(self.stored(a), "stored without the origin's leave: %r" % a)
        for other in (self.auth_get(t, "bob"), self.get(t)):
            self.assertNotIn(b"alice", other.body, other)
        self.assertEqual(self.app.count(t), 3)

    def test_authorization_without_leave_never_stored(self):
        # hashed-assets (ttl 365d), html (ttl 0s) and default (ttl origin);
        # max-age alone is no leave to share (§3.5).
        for path, ct in (("/auth/a.%s.css" % self.uniq_hex(), "text/css"),
                         ("/auth/page-%s" % self.uniq_hex(), "text/html"),
                         ("/auth/data-%s" % self.uniq_hex(), "application/json")):
            for cc in (None, "max-age=600"):
                t = path + "?ct=" + ct.replace("/", "%2F") + ("&cc=" + cc if cc else "")
                with self.subTest(path=path, cc=cc):
                    self.check_not_shared(t)

    def test_authorization_must_revalidate_keeps_origin_freshness(self):
        # must-revalidate lets a shared cache store it (§3.5) but use it only
        # while fresh by the origin's word: the 365d ttl does not make it
        # fresh, and the client sees the origin's Cache-Control.
        t = "/auth/a.%s.css?ct=text%%2Fcss&cc=must-revalidate" % self.uniq_hex()
        a = self.auth_get(t, "alice")
        self.assertIn(b"alice", a.body)
        self.assertEqual(a.header("Cache-Control"), "must-revalidate", a)
        b = self.auth_get(t, "bob")
        self.assertNotHit(b)
        self.assertIn(b"bob", b.body)
        self.assertEqual(self.app.count(t), 2)

    def test_authorization_public_is_shared_for_the_origins_time(self):
        for path, ct in (("/auth/a.%s.css" % self.uniq_hex(), "text/css"),
                         ("/auth/data-%s" % self.uniq_hex(), "application/json")):
            t = path + "?ct=" + ct.replace("/", "%2F") + "&cc=public,+max-age=60"
            with self.subTest(path=path):
                a = self.auth_get(t, "alice")
                self.assertTrue(self.stored(a), a)
                b = self.auth_get(t, "bob")
                self.assertHit(b)
                # the origin said public: shared, with its own Cache-Control
                self.assertEqual(b.header("Cache-Control"), "public, max-age=60", b)
                self.assertEqual(self.app.count(t), 1)

    def uniq_hex(self):
        """A fresh 8-hex-digit name part (the hashed-assets pattern)."""
        return "%08x" % (abs(hash(self.uniq())) & 0xFFFFFFFF)


class NegativeTtlTest(PoisonTestCase):
    # negative_ttl 2s: with whole-second Dates a response can be a second
    # old when stored; 2 s keeps it fresh for the next request, 3.1 s later
    # it is stale whatever the rounding.
    config = {"policies": [
        {"name": "assets", "match": {"path": r"^/static/"}, "ttl": "365d",
         "negative_ttl": "2s", "response_cache_control": "public, max-age=31536000, immutable"},
        {"name": "long", "match": {"path": r"^/auth/long/"}, "ttl": "365d",
         "negative_ttl": "2s"},
        {"name": "strict", "match": {"path": r"^/auth/strict/"}, "ttl": "1h",
         "negative_ttl": "0s"},
        {"name": "default", "ttl": "origin"},
    ]}

    def test_negative_ttl_expires(self):
        # a 404 whose type agrees with the path (so the deception check
        # lets it be stored): kept negative_ttl, not the policy's 365d
        t = "/auth/long/gone.%s.js?status=404&ct=application%%2Fjavascript" % self.uniq()
        r = self.get(t)
        self.assertEqual(r.status, 404)
        self.assertTrue(self.stored(r), r)
        r = self.get(t)
        self.assertEqual(r.status, 404)
        self.assertHit(r)
        self.assertEqual(self.app.count(t), 1)
        time.sleep(3.1)
        r = self.get(t)
        self.assertEqual(r.status, 404)
        self.assertNotHit(r)
        self.assertEqual(self.app.count(t), 2)

    def test_method_override_405_does_not_deny_the_asset(self):
        t = "/static/app-%s.css" % self.uniq()
        r = self.get(t, {"X-HTTP-Method-Override": "DELETE"})
        self.assertEqual(r.status, 405)
        self.assertIsNone(r.header("Cache-Control"), r)
        r = self.get(t)
        self.assertOk(r)
        self.assertEqual(r.header("Content-Type"), "text/css")
        r = self.get(t)
        self.assertHit(r)            # the real asset keeps the policy's ttl
        self.assertEqual(self.app.count(t), 2)

    def test_negative_ttl_zero_stores_none(self):
        t = "/auth/strict/x-%s?status=404" % self.uniq()
        for _ in range(2):
            r = self.get(t)
            self.assertEqual(r.status, 404)
            self.assertFalse(self.stored(r), r)
        self.assertEqual(self.app.count(t), 2)

    def test_origin_freshness_wins(self):
        # negative_ttl 0s, but the origin says max-age=60: the origin wins
        t = "/auth/strict/y-%s?status=404&cc=max-age=60" % self.uniq()
        self.assertEqual(self.get(t).status, 404)
        r = self.get(t)
        self.assertEqual(r.status, 404)
        self.assertHit(r)
        self.assertEqual(self.app.count(t), 1)

    def test_other_status_follows_the_origin(self):
        # a 302 is not the ttl's business: the origin's max-age=2 holds,
        # not the policy's 365d ...
        t = "/auth/long/z-%s?status=302&cc=max-age=2" % self.uniq()
        r = self.get(t)
        self.assertEqual(r.status, 302)
        self.assertTrue(self.stored(r), r)
        time.sleep(3.1)
        self.assertEqual(self.get(t).status, 302)
        self.assertEqual(self.app.count(t), 2)
        # ... and without freshness from the origin it is not stored at all
        t = "/auth/long/w-%s?status=302" % self.uniq()
        for _ in range(2):
            self.assertFalse(self.stored(self.get(t)))
        self.assertEqual(self.app.count(t), 2)

    def test_ttl_statuses_keep_the_policy_ttl(self):
        # the policy's ttl still holds for 200 ... 308: a 301 without any
        # Cache-Control is kept
        t = "/auth/long/p-%s?status=301" % self.uniq()
        self.assertEqual(self.get(t).status, 301)
        r = self.get(t)
        self.assertEqual(r.status, 301)
        self.assertHit(r)
        self.assertEqual(self.app.count(t), 1)


class TrustedProxyTest(PoisonTestCase):
    config = {"trusted_proxies": ["127.0.0.0/8"]}

    def test_trusted_proxy_forwarding_passes(self):
        t = "/echo-%s" % self.uniq()
        r = self.get(t, [("X-Forwarded-Host", "www.example.test"),
                         ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443"),
                         ("X-Forwarded-For", "203.0.113.9"),
                         ("X-Forwarded-For", "198.51.100.2"),
                         ("Forwarded", "for=203.0.113.9;proto=https"),
                         ("X-Original-URL", "/real")])
        self.assertOk(r)
        got = {}
        for k, v in json.loads(r.body):
            got.setdefault(k.lower(), []).append(v)
        self.assertEqual(got["x-forwarded-host"], ["www.example.test"])
        self.assertEqual(got["x-forwarded-proto"], ["https"])
        self.assertEqual(got["x-forwarded-port"], ["443"])
        self.assertEqual(got["x-original-url"], ["/real"])
        # the trusted chain, in order, then the proxy that sent it to us
        self.assertEqual(got["x-forwarded-for"], ["203.0.113.9, 198.51.100.2, 127.0.0.1"])
        self.assertEqual(got["forwarded"], ["for=203.0.113.9;proto=https, for=127.0.0.1"])

    def test_trusted_proxy_without_fields_gets_true_values(self):
        t = "/echo-%s" % self.uniq()
        got = {k.lower(): v for k, v in json.loads(self.get(t).body)}
        self.assertEqual(got["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(got["x-forwarded-proto"], "http")
        self.assertNotIn("forwarded", got)


class UntrustedPeerTest(PoisonTestCase):
    # trusted, but not this peer: the same as no trusted_proxies
    config = {"trusted_proxies": ["10.0.0.0/8", "::1"]}

    def test_untrusted_peer_fields_replaced(self):
        t = "/echo-%s" % self.uniq()
        r = self.get(t, [("X-Forwarded-Host", "evil.example"),
                         ("X-Forwarded-For", "10.1.1.1"), ("X-Forwarded-Proto", "https")])
        got = {}
        for k, v in json.loads(r.body):
            got.setdefault(k.lower(), []).append(v)
        self.assertNotIn("x-forwarded-host", got)
        self.assertEqual(got["x-forwarded-for"], ["127.0.0.1"])
        self.assertEqual(got["x-forwarded-proto"], ["http"])


if __name__ == "__main__":
    H.main()
