"""test_rfc_current.py — where RFC 9111/9110/9213 moved past the npm suite
0.4.5 (issue 13): Age values, CDN-Cache-Control, Set-Cookie per policy,
HTTP-date case.  (1xx forwarding is in test_strict.py, with a raw origin.)
"""

import harness as H


class CurrentRfcTest(H.ProxyTestCase):
    config = {"policies": [
        {"name": "cookies-strip", "match": {"content_type": ["text/x-strip"]}, "set_cookie": "strip"},
        {"name": "cookies-store", "match": {"content_type": ["text/x-store"]}, "set_cookie": "store"},
        {"name": "default", "ttl": "origin"},
    ]}

    def twice(self, **params):
        t = H.url("/t/body", size=5, seed=self.uniq(), **params)
        return t, self.get(t), self.get(t)

    def test_invalid_age_is_ignored(self):       # RFC 9111 §5.1
        for bad in ("abc", "-5", "1.5", "5s", "0x10"):
            t, r1, r2 = self.twice(cc="max-age=60", hdr="Age:%s" % bad)
            self.assertEqual(r1.status, 200)
            self.assertHit(r2)
            self.assertEqual(self.origin.count(t), 1, "Age: %s made it stale" % bad)

    def test_list_age_uses_first_member(self):   # RFC 9111 §5.1
        t, r1, r2 = self.twice(cc="max-age=60", hdr="Age:0, 7200")
        self.assertHit(r2)
        self.assertLess(r2.age, 60)
        t, r1, r2 = self.twice(cc="max-age=60", hdr=["Age:7200", "Age:0"])
        self.assertNotHit(r2)
        self.assertEqual(self.origin.count(t), 2)

    def test_cdn_cache_control_obeyed_and_forwarded(self):   # RFC 9213
        t, r1, r2 = self.twice(cc="no-store", hdr="CDN-Cache-Control:max-age=60")
        self.assertEqual(r1.header("CDN-Cache-Control"), "max-age=60")
        self.assertHit(r2)
        self.assertEqual(r2.header("CDN-Cache-Control"), "max-age=60")
        # ours is for us only
        t, r1, r2 = self.twice(cc="no-store", hdr="Freshcache-Cache-Control:max-age=60")
        self.assertHit(r2)
        self.assertIsNone(r1.header("Freshcache-Cache-Control"))
        self.assertIsNone(r2.header("Freshcache-Cache-Control"))

    def test_cdn_cache_control_not_a_dictionary_is_ignored(self):   # RFC 9213 §2.1
        t, r1, r2 = self.twice(cc="no-store", hdr="CDN-Cache-Control:Max-Age=60")
        self.assertNotHit(r2)
        self.assertEqual(self.origin.count(t), 2)
        # a wrong-typed directive alone is ignored: no-store still holds
        t, r1, r2 = self.twice(cc="max-age=60", hdr='CDN-Cache-Control:max-age="60", no-store')
        self.assertNotHit(r2)

    def test_set_cookie_pass(self):
        t, r1, r2 = self.twice(cc="max-age=60", hdr="Set-Cookie:id=1")
        self.assertNotHit(r2)
        self.assertEqual(r2.header("Set-Cookie"), "id=1")
        t, r1, r2 = self.twice(cc="public, max-age=60", hdr="Set-Cookie:id=1")
        self.assertHit(r2)
        self.assertEqual(r2.header("Set-Cookie"), "id=1")

    def test_set_cookie_store(self):
        t, r1, r2 = self.twice(cc="max-age=60", ct="text/x-store", hdr="Set-Cookie:id=2")
        self.assertHit(r2)
        self.assertEqual(r2.header("Set-Cookie"), "id=2")

    def test_set_cookie_strip(self):
        t, r1, r2 = self.twice(cc="max-age=60", ct="text/x-strip", hdr="Set-Cookie:id=3")
        self.assertIsNone(r1.header("Set-Cookie"))
        self.assertHit(r2)
        self.assertIsNone(r2.header("Set-Cookie"))
        # not stored: the cookie stays with its one client
        t, r1, r2 = self.twice(cc="no-store", ct="text/x-strip", hdr="Set-Cookie:id=4")
        self.assertEqual(r1.header("Set-Cookie"), "id=4")

    def test_expires_names_in_any_case(self):    # RFC 9110 §5.6.7
        t, r1, r2 = self.twice(hdr="Expires:thu, 01 JAN 2099 00:00:00 gmt")
        self.assertHit(r2)
        t, r1, r2 = self.twice(hdr="Expires:soon")
        self.assertNotHit(r2)


if __name__ == "__main__":
    H.main()
