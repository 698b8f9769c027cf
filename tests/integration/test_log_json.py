#!/usr/bin/env python3
"""The access log as JSON (log.format: json, issue 16), read from the file
the daemon writes.

- One JSON object a line, with the fields of the text line named and typed:
  time (RFC 3339, UTC), client, method, uri, protocol, status, bytes,
  referer, user_agent, cache_status, generation, origin_ms (null when the
  origin was not asked), total_ms.
- The same request logged as text and, after a reload to json, as JSON:
  the same values (the format follows a reload, live).
- Whatever a client sends (quotes, backslashes, bytes that are not UTF-8,
  a request that cannot be parsed) stays one line of valid JSON.

Needs FRESHCACHED and TEST_ORIGIN (see harness.py)."""

import calendar
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402

FIELDS = ["time", "client", "method", "uri", "protocol", "status", "bytes", "referer",
          "user_agent", "cache_status", "generation", "origin_ms", "total_ms"]

# the text line (docs/operating.md), to compare with
TEXT_LINE = re.compile(
    r'^(?P<client>\S+) \[(?P<time>[^]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" "(?P<cache>[^"]*)" '
    r'gen=(?P<gen>\d+) origin_ms=(?P<origin_ms>-?\d+) total_ms=(?P<total_ms>\d+)$')


class JsonLogCase(H.ProxyTestCase):
    log_format = "json"

    @classmethod
    def setUpClass(cls):
        # the config is merged before the class's tmp dir exists: a dir of its own
        log_dir = tempfile.mkdtemp(prefix="fc-log-")
        cls.addClassCleanup(shutil.rmtree, log_dir, True)
        cls.access_path = os.path.join(log_dir, "access.log")
        cls.config = {"log": {"access": cls.access_path, "format": cls.log_format}}
        super().setUpClass()

    def raw_lines(self):
        try:
            with open(self.access_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        self.assertTrue(data == b"" or data.endswith(b"\n"), data[-200:])
        return data.split(b"\n")[:-1]

    def lines_with(self, marker, n=1, timeout=3.0):
        """Raw lines containing `marker` (bytes), once there are `n` (workers
        flush every 200 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [ln for ln in self.raw_lines() if marker in ln]
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def json_line(self, raw):
        """The object of one line; the line must be exactly one JSON object
        with the documented fields, in order."""
        self.assertNotIn(b"\r", raw)
        doc = json.loads(raw.decode("utf-8"))      # strict: valid UTF-8 or it fails
        self.assertIsInstance(doc, dict)
        self.assertEqual(list(doc), FIELDS, raw)
        return doc

    def cache_field(self, resp):
        return re.sub(r"^freshcache;\s*", "", resp.header("Cache-Status") or "")

    def reload_with(self, **log):
        cfg = H.deep_merge(self.proxy.config, {"log": log})
        with open(self.proxy.config_path, "w") as f:
            f.write(H.to_yaml(cfg) + "\n")
        status, doc = self.proxy.admin("POST", "/reload")
        self.assertEqual((status, doc), (200, {"ok": True}))


class JsonLogTest(JsonLogCase):

    def test_fields(self):
        seed = self.uniq()
        t = url("/t/body", size=1234, seed=seed, cc="max-age=60", delay_ms=120)
        hs = {"Referer": "http://example.com/from?x=1", "User-Agent": "json-test/1.0 (%s)" % seed}
        r1 = self.get(t, headers=hs)
        self.assertOk(r1, expected_body(1234, seed))
        r2 = self.get(t, headers=hs)
        self.assertHit(r2)
        r3 = self.get(t, method="HEAD")
        lines = self.lines_with(seed.encode(), n=3)
        self.assertEqual(len(lines), 3, lines)
        docs = [self.json_line(ln) for ln in lines]
        _, gen = self.proxy.admin("GET", "/generation")
        for d in docs:
            self.assertEqual(d["client"], "127.0.0.1")
            self.assertEqual(d["uri"], t)
            self.assertEqual(d["protocol"], "HTTP/1.1")
            self.assertEqual(d["generation"], gen["generation"])
            self.assertRegex(d["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            logged = calendar.timegm(time.strptime(d["time"], "%Y-%m-%dT%H:%M:%SZ"))
            self.assertLess(abs(logged - time.time()), 120, d)
            self.assertIsInstance(d["total_ms"], int)
        head = [d for d in docs if d["method"] == "HEAD"]
        gets = [d for d in docs if d["method"] == "GET"]
        self.assertEqual((len(head), len(gets)), (1, 2), docs)
        miss = [d for d in gets if d["cache_status"] != "hit"][0]
        hit = [d for d in gets if d["cache_status"] == "hit"][0]
        self.assertEqual(miss["status"], 200)
        self.assertEqual(miss["bytes"], 1234)
        self.assertEqual(miss["referer"], hs["Referer"])
        self.assertEqual(miss["user_agent"], hs["User-Agent"])
        self.assertEqual(miss["cache_status"], self.cache_field(r1))
        self.assertGreaterEqual(miss["origin_ms"], 110)
        self.assertGreaterEqual(miss["total_ms"], miss["origin_ms"])
        self.assertEqual(hit["cache_status"], self.cache_field(r2))
        self.assertIsNone(hit["origin_ms"], "a hit has no origin time")
        self.assertEqual(hit["bytes"], 1234)
        self.assertEqual(head[0]["bytes"], 0)
        self.assertIsNone(head[0]["referer"])
        self.assertIsNone(head[0]["user_agent"])
        self.assertEqual(head[0]["cache_status"], self.cache_field(r3))

    def test_hostile_client(self):
        seed = self.uniq()
        # quotes and backslashes as a forger would use them, raw bytes that
        # are not UTF-8 (0xff, a lone 0xe9) and some that are (é as UTF-8)
        ua = ('x"}, "status": 500, "y": "\\ %s ' % seed).encode() + b"\xff caf\xe9 " + \
            "caf\u00e9".encode("utf-8")
        with self.conn() as c:
            c.send(b"GET " + url("/t/body", size=3, seed=seed).encode() + b" HTTP/1.1\r\n"
                   b"Host: 127.0.0.1\r\nUser-Agent: " + ua + b"\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
        lines = self.lines_with(seed.encode())
        self.assertEqual(len(lines), 1, lines)
        d = self.json_line(lines[0])
        self.assertEqual(d["status"], 200)
        self.assertEqual(d["user_agent"],
                         'x"}, "status": 500, "y": "\\ %s \ufffd caf\ufffd caf\u00e9' % seed)

    def test_unparsable_request_is_one_clean_line(self):
        before = len(self.raw_lines())
        with self.conn() as c:
            c.send(b"GET /t/bo\x01dy\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 400, r)
        deadline = time.monotonic() + 3
        while len(self.raw_lines()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        new = self.raw_lines()[before:]
        self.assertEqual(len(new), 1, new)
        self.assertFalse(re.search(rb"[\x00-\x1f\x7f]", new[0]), new[0])
        d = self.json_line(new[0])
        self.assertEqual(d["status"], 400)


class FormatReloadTest(JsonLogCase):
    """Start with text; the same request logged as text and, after a
    reload, as JSON carries the same values."""
    log_format = "text"

    def test_same_fields_as_text(self):
        seed = self.uniq()
        t = url("/t/body", size=777, seed=seed, cc="max-age=60")
        hs = {"Referer": "http://r.example/%s" % seed, "User-Agent": "agent %s" % seed}
        self.get(t, headers=hs)                         # miss, stored
        self.assertHit(self.get(t, headers=hs))         # logged as text
        # each worker flushes its own lines: the file need not be in order
        text = self.lines_with(seed.encode(), n=2)
        self.assertEqual(len(text), 2, text)
        parsed = [TEXT_LINE.match(ln.decode()) for ln in text]
        self.assertTrue(all(parsed), text)
        m = [p for p in parsed if p["cache"] == "hit"][0]
        try:
            self.reload_with(format="json")
            self.assertHit(self.get(t, headers=hs))     # the same, as JSON
            lines = self.lines_with(seed.encode(), n=3)
            self.assertEqual(len(lines), 3, lines)
            as_json = [ln for ln in lines if ln.startswith(b"{")]
            self.assertEqual(len(as_json), 1, lines)
            d = self.json_line(as_json[0])
        finally:
            self.reload_with(format="text")
        self.assertEqual(d["client"], m["client"])
        self.assertEqual("%s %s %s" % (d["method"], d["uri"], d["protocol"]), m["request"])
        self.assertEqual(str(d["status"]), m["status"])
        self.assertEqual(str(d["bytes"]), m["bytes"])
        self.assertEqual(d["referer"], m["referer"])
        self.assertEqual(d["user_agent"], m["ua"])
        self.assertEqual(d["cache_status"], m["cache"])
        self.assertEqual(str(d["generation"]), m["gen"])
        self.assertEqual(m["origin_ms"], "-1")
        self.assertIsNone(d["origin_ms"])
        text_time = calendar.timegm(time.strptime(m["time"], "%d/%b/%Y:%H:%M:%S +0000"))
        json_time = calendar.timegm(time.strptime(d["time"], "%Y-%m-%dT%H:%M:%SZ"))
        self.assertLess(abs(json_time - text_time), 60)
        # and back: text again after the second reload
        self.get(t, headers=hs)
        lines = self.lines_with(seed.encode(), n=4)
        self.assertEqual(len([ln for ln in lines if TEXT_LINE.match(ln.decode())]), 3, lines)


if __name__ == "__main__":
    H.main()
