#!/usr/bin/python3
"""HTTP/2 bounds and attacks (issue 11, item 3): each test shows the bound
holds and the daemon lives (it answers a new connection afterwards, and
every test's tearDown checks it did not die).

- SETTINGS_MAX_CONCURRENT_STREAMS (limits.max_concurrent_streams: 5): the
  sixth stream refused (REFUSED_STREAM, before the client acknowledged the
  setting and after), the five answered; refusals bounded like control
  frames; bodies on refused streams give the connection window back;
- the decoded header list against limits.max_header_bytes: the stream is
  reset, the connection goes on; an HPACK bomb (a few bytes referencing a
  large dynamic-table entry) meets the same bound;
- rapid reset (CVE-2023-44487): streams opened and reset in a loop end in
  a GOAWAY after a bound;
- CONTINUATION, SETTINGS, PING and PRIORITY floods: GOAWAY or closed;
- flow control with a 100 MiB cached object: slow readers cost no copy
  (the daemon's RSS does not grow by anything near the body), a fast
  reader that acknowledges every frame gets it quickly;
- a stream that never reads (window 0) is reset after client_timeout while
  the other streams of its connection go on; an idle connection gets a
  GOAWAY;
- slow clients (limits.header_timeout, limits.min_body_rate): a preface,
  a header block or a request body trickled is cut;
- graceful GOAWAY on SIGTERM and on SIGHUP: the stream in flight
  completes, new streams are not taken, last-stream-id is the last one
  taken;
- a connection ended with a GOAWAY closes in stages (the client's unread
  frames do not turn our FIN into a reset), and SIGTERM ends such a
  linger at once.

Hostile sequences are written frame by frame (RawH2: hyperframe and hpack,
which python3-h2 brings), with none of a client library's manners.
Needs python3-h2 (Debian's: run with /usr/bin/python3), FRESHCACHED,
TEST_ORIGIN (see harness.py) and curl."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402

CURL = shutil.which("curl")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 §7 error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, CANCEL = 0x0, 0x1, 0x2, 0x8
REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x7, 0xb
# RFC 9113 §6.5.2 settings
MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE = 0x3, 0x4, 0x6

# src/server/h2.c's bounds, as documented in docs/http2.md
RESET_BURST = 200           # client resets before the rate applies
CONTROL_BURST = 500         # PING, SETTINGS, PRIORITY, empty DATA frames before the rate
MAX_CONTINUATIONS = 8


def setUpModule():
    if not H.h2_available():
        raise RuntimeError("test_h2_bounds.py needs python3-h2: run it with Debian's "
                           "/usr/bin/python3 (scripts/install-deps installs python3-h2)")
    if not CURL:
        raise RuntimeError("test_h2_bounds.py needs curl")


class RawH2:
    """HTTP/2 frames by hand over cleartext (prior knowledge).  The
    server's frames are parsed as they arrive (self.frames); its SETTINGS
    are acknowledged when read (ack_settings=False: never), its HEADERS
    decoded so the HPACK state stays in step with ours."""

    def __init__(self, port, timeout=10.0, settings=None, ack_settings=True):
        import hpack
        import hyperframe.frame as F
        self.F = F
        self.port = port
        self.timeout = timeout
        self.ack_settings = ack_settings
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = bytearray()
        self.frames = []
        self.goaway = None          # (error code, last stream id) of the last GOAWAY
        self.eof = False
        self.settings = {}          # the server's
        self.pending = PREFACE + self.settings_frame(settings or {})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data=b""):
        """Send `data` (after the preface, the first time).  False once the
        server has closed."""
        data, self.pending = self.pending + data, b""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True
            return False

    # -- frames ----------------------------------------------------------------

    def settings_frame(self, settings, ack=False):
        f = self.F.SettingsFrame(0)
        if ack:
            f.flags.add("ACK")
        f.settings = dict(settings)
        return f.serialize()

    def fields(self, target, method="GET", extra=()):
        return [(":method", method), (":scheme", "http"),
                (":authority", "127.0.0.1:%d" % self.port), (":path", target)] + list(extra)

    def headers_frame(self, sid, fields=None, end_stream=True, end_headers=True, block=None):
        f = self.F.HeadersFrame(sid)
        f.data = block if block is not None else self.enc.encode(fields)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f.serialize()

    def continuation_frame(self, sid, block, end_headers=False):
        f = self.F.ContinuationFrame(sid)
        f.data = block
        if end_headers:
            f.flags.add("END_HEADERS")
        return f.serialize()

    def rst_frame(self, sid, code=CANCEL):
        f = self.F.RstStreamFrame(sid)
        f.error_code = code
        return f.serialize()

    def ping_frame(self, data=b"\0" * 8):
        f = self.F.PingFrame(0)
        f.opaque_data = data
        return f.serialize()

    def priority_frame(self, sid):
        f = self.F.PriorityFrame(sid)
        f.depends_on, f.stream_weight = 0, 15
        return f.serialize()

    def get(self, sid, target, extra=()):
        return self.send(self.headers_frame(sid, self.fields(target, extra=extra)))

    # -- reading ---------------------------------------------------------------

    def read(self, timeout=None):
        """What has arrived (waiting up to `timeout`): the new frames."""
        if self.eof:
            return []
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(1 << 18)
        except (socket.timeout, BlockingIOError):
            return []
        except OSError:         # reset
            data = b""
        if not data:
            self.eof = True
            return []
        self.buf += data
        new = []
        while len(self.buf) >= 9:
            f, length = self.F.Frame.parse_frame_header(memoryview(bytes(self.buf[:9])))
            if len(self.buf) < 9 + length:
                break
            f.parse_body(memoryview(bytes(self.buf[9:9 + length])))
            del self.buf[:9 + length]
            if isinstance(f, self.F.HeadersFrame):
                f.fields = [(k.decode(), v.decode()) for k, v in self.dec.decode(f.data, raw=True)]
            elif isinstance(f, self.F.GoAwayFrame):
                self.goaway = (f.error_code, f.last_stream_id)
            elif isinstance(f, self.F.SettingsFrame) and "ACK" not in f.flags:
                self.settings.update(f.settings)
                if self.ack_settings:
                    self.send(self.settings_frame({}, ack=True))
            new.append(f)
        self.frames.extend(new)
        return new

    def read_until(self, pred, timeout=5.0):
        """Read until pred() is true (returns its value), or None at the
        timeout or when the server closed."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.read(left)

    def handshake(self):
        """Preface and SETTINGS both ways, both acknowledged."""
        self.send()
        ok = self.read_until(lambda: self.settings and self.acked(), 5)
        if not ok:
            raise AssertionError("no SETTINGS exchange with the server: %r" % self.frames)

    def acked(self):
        return any(isinstance(f, self.F.SettingsFrame) and "ACK" in f.flags for f in self.frames)

    def of(self, sid, kind=None):
        return [f for f in self.frames
                if f.stream_id == sid and (kind is None or isinstance(f, kind))]

    def status(self, sid):
        for f in self.of(sid, self.F.HeadersFrame):
            for k, v in f.fields:
                if k == ":status":
                    return int(v)
        return None

    def ended(self, sid):
        """("end", None) once the stream ended with END_STREAM, ("rst", code)
        once reset, else None."""
        for f in self.of(sid):
            if isinstance(f, self.F.RstStreamFrame):
                return ("rst", f.error_code)
            if isinstance(f, (self.F.DataFrame, self.F.HeadersFrame)) and "END_STREAM" in f.flags:
                return ("end", None)
        return None

    def body(self, sid):
        return b"".join(bytes(f.data) for f in self.of(sid, self.F.DataFrame))

    def closed_within(self, timeout):
        """True if the server closes within `timeout` (frames read meanwhile
        are kept)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.read(left)
        return True


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class BoundsCase(H.ProxyTestCase):
    listen_options = {"http2": True}

    @classmethod
    def setUpClass(cls):
        if H.DIRECT:
            raise unittest.SkipTest("HTTP/2 tests need freshcached (FRESHCACHE_TEST_DIRECT=1)")
        super().setUpClass()

    def raw(self, **kw):
        return RawH2(self.port, **kw)

    def assertStillServes(self):
        """A new HTTP/2 connection is served."""
        seed = self.uniq()
        t = url("/t/body", size=100, seed=seed)
        self.assertOk(H.h2_request(self.port, "GET", t), expected_body(100, seed))

    def assertAnswered(self, c, sid, body):
        self.assertEqual(c.ended(sid), ("end", None), "stream %d: %r" % (sid, c.of(sid)))
        self.assertEqual(c.status(sid), 200, "stream %d" % sid)
        self.assertEqual(c.body(sid), body, "stream %d" % sid)

    def wait_connections(self, n, timeout=5.0):
        """/stats connections (open now) reaches n."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.admin_json("GET", "/stats")["connections"]
            if got == n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


# ---------------------------------------------------------------------------


class ConcurrentStreamsTest(BoundsCase):
    config = {"limits": {"max_concurrent_streams": 5}}

    def slow(self, seed, i):
        return url("/t/body", size=10, delay_ms=500, cc="max-age=60", seed="%s-%d" % (seed, i))

    def test_settings_advertise_the_limit(self):
        with self.raw() as c:
            c.handshake()
            self.assertEqual(c.settings.get(MAX_CONCURRENT_STREAMS), 5, c.settings)

    def test_sixth_stream_refused(self):
        """Seven streams sent with the preface (before our SETTINGS could be
        acknowledged): the sixth and seventh are refused, the five answered."""
        seed = self.uniq()
        with self.raw() as c:
            for i in range(7):
                c.get(1 + 2 * i, self.slow(seed, i))
            c.read_until(lambda: all(c.ended(1 + 2 * i) for i in range(7)), 5)
            for i in range(5):
                self.assertAnswered(c, 1 + 2 * i, expected_body(10, "%s-%d" % (seed, i)))
            for i in (5, 6):
                self.assertEqual(c.ended(1 + 2 * i), ("rst", REFUSED_STREAM), c.of(1 + 2 * i))
                self.assertOriginCount(self.slow(seed, i), 0)
            self.assertIsNone(c.goaway)
            # the refused ones can be sent again on the same connection
            c.get(15, self.slow(seed, 5))
            c.read_until(lambda: c.ended(15), 5)
            self.assertAnswered(c, 15, expected_body(10, "%s-5" % seed))
        self.assertStillServes()

    def sixth_after_ack(self):
        seed = self.uniq()
        c = self.raw()
        self.addCleanup(c.close)
        c.handshake()
        for i in range(6):
            c.get(1 + 2 * i, self.slow(seed, i))
        c.read_until(lambda: all(c.ended(1 + 2 * i) for i in range(6)) or c.eof, 5)
        return c, seed

    def test_sixth_stream_after_settings_ack_not_served(self):
        """The client has acknowledged the limit and opens a sixth stream
        anyway: it is never served, nor sent to the origin."""
        c, seed = self.sixth_after_ack()
        self.assertIsNone(c.status(11), c.of(11))
        self.assertOriginCount(self.slow(seed, 5), 0)
        self.assertStillServes()

    def test_sixth_stream_after_settings_ack_refused_others_answered(self):
        """RFC 9113 §5.1.2: a stream error (REFUSED_STREAM), not a connection
        error.  nghttp2 (1.52) left alone closes the connection with GOAWAY
        PROTOCOL_ERROR once the limit is acknowledged, and the five streams
        in flight are lost; h2.c's "the stream limit" keeps them."""
        c, seed = self.sixth_after_ack()
        self.assertEqual(c.ended(11), ("rst", REFUSED_STREAM), c.frames)
        for i in range(5):
            self.assertAnswered(c, 1 + 2 * i, expected_body(10, "%s-%d" % (seed, i)))
        self.assertIsNone(c.goaway)
        self.assertOriginCount(self.slow(seed, 5), 0)
        # the slot frees as a stream ends: the refused one can be sent again
        c.get(13, self.slow(seed, 5))
        c.read_until(lambda: c.ended(13), 5)
        self.assertAnswered(c, 13, expected_body(10, "%s-5" % seed))

    def test_refused_uploads_give_the_window_back(self):
        """Bodies sent on refused streams (1.5 MiB, past the connection's
        1 MiB window) are dropped and their window given back: once the
        slots free, an upload on the same connection still gets through."""
        seed = self.uniq()
        with self.raw() as c:
            c.handshake()
            for i in range(5):
                c.get(1 + 2 * i, self.slow(seed, i))
            c.read(0.3)     # our SETTINGS acknowledged, the five taken
            chunk = b"u" * 16384
            for k in range(6):
                sid = 11 + 2 * k
                f = c.F.DataFrame(sid)
                f.data = chunk
                frames = c.headers_frame(sid, c.fields(url("/t/echo", seed=seed), "POST",
                                                      [("content-length", str(16 * 16384))]),
                                         end_stream=False)
                frames += b"".join(f.serialize() for _ in range(16))
                self.assertTrue(c.send(frames))
                c.read(0.05)
            c.read_until(lambda: all(c.ended(1 + 2 * i) for i in range(5)), 5)
            for k in range(6):
                self.assertEqual(c.ended(11 + 2 * k), ("rst", REFUSED_STREAM), c.of(11 + 2 * k))
            self.assertIsNone(c.goaway)
            # a slot is free: an upload of 512 KiB (more than the window the
            # refused bodies would have left) is answered
            body = b"v" * (512 * 1024)
            sid = 23
            c.send(c.headers_frame(sid, c.fields(url("/t/echo", seed=seed + "-ok"), "POST",
                                                 [("content-length", str(len(body)))]),
                                   end_stream=False))
            sent = 0
            deadline = time.monotonic() + 10
            while sent < len(body) and time.monotonic() < deadline:
                window = min(16384, len(body) - sent)
                f = c.F.DataFrame(sid)
                f.data = body[sent:sent + window]
                if sent + window == len(body):
                    f.flags.add("END_STREAM")
                c.send(f.serialize())
                sent += window
                c.read(0.001)
            c.read_until(lambda: c.ended(sid), 10)
            self.assertEqual(c.status(sid), 200, c.of(sid))
            self.assertEqual(json.loads(c.body(sid))["body_length"], len(body))
        self.assertStillServes()

    def test_refusals_are_bounded(self):
        """Refusing a stream is cheap, and so is asking for one: a client
        that keeps opening streams over the limit shares the control-frame
        bound (CONTROL_BURST, then GOAWAY ENHANCE_YOUR_CALM), and none of
        them reaches the origin."""
        seed = self.uniq()
        with self.raw() as c:
            c.handshake()
            for i in range(5):
                c.get(1 + 2 * i, url("/t/body", size=10, delay_ms=3000,
                                     seed="%s-held-%d" % (seed, i)))
            c.read(0.3)     # our SETTINGS acknowledged, the five taken
            over = url("/t/body", size=10, seed=seed + "-over")
            fields = c.fields(over)
            sid, sent = 11, 0
            while sent < 3 * CONTROL_BURST and not c.goaway and not c.eof:
                if not c.send(b"".join(c.headers_frame(sid + 2 * k, fields) for k in range(50))):
                    break
                sid += 100
                sent += 50
                c.read(0.01)
            c.read_until(lambda: c.goaway, 5)
            self.assertIsNotNone(c.goaway, "no GOAWAY after %d refused streams" % sent)
            self.assertEqual(c.goaway[0], ENHANCE_YOUR_CALM, c.goaway)
            refused = [f for f in c.frames if isinstance(f, c.F.RstStreamFrame)
                       and f.error_code == REFUSED_STREAM]
            self.assertGreaterEqual(len(refused), CONTROL_BURST - 100, "%d refused" % len(refused))
            self.assertLess(len(refused), CONTROL_BURST + 300, "%d refused" % len(refused))
        self.assertOriginCount(over, 0)
        self.assertStillServes()

    def test_slots_free_as_streams_end(self):
        """A client that keeps to the limit: 25 requests, 5 at a time, on
        one connection."""
        seed = self.uniq()
        with H.H2Conn(self.port) as c:
            for batch in range(5):
                sids = [c.send_request("GET", url("/t/body", size=10 + k, seed=seed))
                        for k in range(5)]
                for k, r in enumerate(c.read_all(sids)):
                    self.assertOk(r, expected_body(10 + k, seed))
            self.assertIsNone(c.goaway)


class HeaderListTest(BoundsCase):
    config = {"limits": {"max_header_bytes": "4KiB"}}

    def test_settings_advertise_the_limit(self):
        with self.raw() as c:
            c.handshake()
            self.assertEqual(c.settings.get(MAX_HEADER_LIST_SIZE), 4096, c.settings)

    def test_one_large_field_resets_the_stream(self):
        seed = self.uniq()
        big = url("/t/body", size=3, seed=seed + "-big")
        with self.raw() as c:
            c.handshake()
            c.get(1, big, [("x-big", "b" * 5000)])
            c.get(3, url("/t/body", size=3, seed=seed))
            c.read_until(lambda: c.ended(1) and c.ended(3), 5)
            self.assertEqual(c.ended(1), ("rst", INTERNAL_ERROR), c.of(1))
            self.assertIsNone(c.status(1))
            self.assertAnswered(c, 3, expected_body(3, seed))
            self.assertIsNone(c.goaway)
            self.assertFalse(c.eof)
        self.assertOriginCount(big, 0)
        self.assertStillServes()

    def test_many_small_fields_count_their_overhead(self):
        """150 fields of 10 bytes: 1.5 KiB of names and values, but each
        counts 32 octets more (RFC 9113 §6.5.2): over 4 KiB."""
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            c.get(1, t, [("x-%03d" % i, "vvvvv") for i in range(150)])
            c.read_until(lambda: c.ended(1), 5)
            self.assertEqual(c.ended(1), ("rst", INTERNAL_ERROR), c.of(1))
        self.assertOriginCount(t, 0)
        self.assertStillServes()

    def test_under_the_limit_served(self):
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            c.get(1, t, [("x-big", "b" * 3000)])
            c.read_until(lambda: c.ended(1), 5)
            self.assertAnswered(c, 1, expected_body(3, seed))


class HpackBombTest(BoundsCase):
    # limits.max_header_bytes: the default 16 KiB

    def test_hpack_bomb_resets_the_stream(self):
        """A 3 KiB field enters the dynamic table; the next HEADERS refers
        to it 300 times in about 300 bytes (900 KiB decoded): reset.  The
        table stays in step: the field is usable again on the next stream."""
        seed = self.uniq()
        field = ("x-bomb", "a" * 3000)
        ok1, bomb, ok2 = (url("/t/body", size=3, seed="%s-%d" % (seed, i)) for i in range(3))
        with self.raw() as c:
            c.handshake()
            c.get(1, ok1, [field])
            c.read_until(lambda: c.ended(1), 5)
            self.assertAnswered(c, 1, expected_body(3, seed + "-0"))
            block = c.enc.encode(c.fields(bomb) + [field] * 300)
            self.assertLess(len(block), 400, "the bomb is not small")
            c.send(c.headers_frame(3, block=block))
            c.get(5, ok2, [field])
            c.read_until(lambda: c.ended(3) and c.ended(5), 5)
            self.assertEqual(c.ended(3), ("rst", INTERNAL_ERROR), c.of(3))
            self.assertAnswered(c, 5, expected_body(3, seed + "-2"))
            self.assertIsNone(c.goaway)
        self.assertOriginCount(bomb, 0)
        self.assertStillServes()


class ContinuationTest(BoundsCase):

    def split_block(self, c, sid, fields, pieces):
        """HEADERS then CONTINUATIONs: the block in `pieces` parts."""
        block = c.enc.encode(fields)
        step = max(1, len(block) // pieces + 1)
        parts = [block[i:i + step] for i in range(0, len(block), step)]
        frames = c.headers_frame(sid, block=parts[0], end_headers=len(parts) == 1)
        for k, p in enumerate(parts[1:], 1):
            frames += c.continuation_frame(sid, p, end_headers=k == len(parts) - 1)
        return frames, len(parts) - 1

    def test_a_few_continuations_are_fine(self):
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            frames, n = self.split_block(c, 1, c.fields(t, extra=[("x-pad", "p" * 2000)]), 5)
            self.assertEqual(n, 4)
            c.send(frames)
            c.read_until(lambda: c.ended(1), 5)
            self.assertAnswered(c, 1, expected_body(3, seed))

    def test_continuation_flood(self):
        """HEADERS without END_HEADERS, then CONTINUATIONs without end: the
        connection ends after at most MAX_CONTINUATIONS of them."""
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            c.send(c.headers_frame(1, c.fields(t), end_headers=False))
            sent = 0
            t0 = time.monotonic()
            # each adds a 12-byte field "a: bbbbbbbbbb" (literal, not indexed)
            piece = c.continuation_frame(1, b"\x00\x01a\x0abbbbbbbbbb")
            while sent < 100000 and not c.eof and time.monotonic() - t0 < 10:
                if not c.send(piece * 100):
                    break
                sent += 100
                c.read(0)
            self.assertTrue(c.closed_within(5), "still open after %d CONTINUATION frames" % sent)
            self.assertLess(time.monotonic() - t0, 10)
            if c.goaway is not None:
                self.assertNotEqual(c.goaway[0], NO_ERROR, c.goaway)
            self.assertIsNone(c.status(1))
        self.assertOriginCount(t, 0)
        self.assertStillServes()


class FloodTest(BoundsCase):

    def flood(self, make, n=200000):
        """Send the frame make(c) n times without reading; the connection
        must end (GOAWAY ENHANCE_YOUR_CALM, or closed) long before.
        Returns the RawH2 (closed) and how many were sent."""
        c = self.raw()
        self.addCleanup(c.close)
        c.handshake()
        frame = make(c)
        sent = 0
        t0 = time.monotonic()
        while sent < n and time.monotonic() - t0 < 20:
            if not c.send(frame * 100):
                break
            sent += 100
        self.assertTrue(c.closed_within(10), "the connection survived %d frames" % sent)
        if c.goaway is not None:
            self.assertEqual(c.goaway[0], ENHANCE_YOUR_CALM, c.goaway)
        return c, sent

    def test_settings_flood(self):
        c, sent = self.flood(lambda c: c.settings_frame({INITIAL_WINDOW_SIZE: 65535}))
        acks = [f for f in c.frames if isinstance(f, c.F.SettingsFrame) and "ACK" in f.flags]
        self.assertLess(len(acks), 1100, "acknowledged %d of %d SETTINGS" % (len(acks), sent))
        self.assertStillServes()

    def test_ping_flood(self):
        c, sent = self.flood(lambda c: c.ping_frame())
        acks = [f for f in c.frames if isinstance(f, c.F.PingFrame) and "ACK" in f.flags]
        self.assertLess(len(acks), 1100, "answered %d of %d PINGs" % (len(acks), sent))
        self.assertStillServes()

    def test_priority_flood(self):
        self.flood(lambda c: c.priority_frame(3))
        self.assertStillServes()

    def test_ping_flood_while_others_are_served(self):
        """Another client's large download goes on during a flood."""
        seed = self.uniq()
        t = url("/t/body", size=4 * H.MiB, seed=seed, cc="max-age=60")
        self.assertOk(self.get(t, timeout=30), expected_body(4 * H.MiB, seed))
        got = {}

        def download():
            got["r"] = H.h2_request(self.port, "GET", t, timeout=30)
        th = threading.Thread(target=download)
        th.start()
        self.flood(lambda c: c.ping_frame())
        th.join(30)
        self.assertOk(got["r"], expected_body(4 * H.MiB, seed))

    def test_flooder_that_reads_gets_enhance_your_calm(self):
        """Sent in batches of 50, read in between: the answer is GOAWAY
        ENHANCE_YOUR_CALM after the burst of CONTROL_BURST (500) frames,
        with about that many acknowledged."""
        for kind, make in (("PING", lambda c: c.ping_frame()),
                           ("SETTINGS", lambda c: c.settings_frame({INITIAL_WINDOW_SIZE: 65535}))):
            with self.subTest(kind), self.raw() as c:
                c.handshake()
                before = len(c.frames)
                frame = make(c)
                sent = 0
                while sent < 5000 and not c.goaway and not c.eof:
                    if not c.send(frame * 50):
                        break
                    sent += 50
                    c.read(0.01)
                c.read_until(lambda: c.goaway, 5)
                self.assertIsNotNone(c.goaway, "no GOAWAY after %d %s frames" % (sent, kind))
                self.assertEqual(c.goaway[0], ENHANCE_YOUR_CALM, c.goaway)
                acks = len([f for f in c.frames[before:] if "ACK" in f.flags])
                self.assertGreaterEqual(acks, CONTROL_BURST - 50, "%d acknowledged" % acks)
                self.assertLess(acks, CONTROL_BURST + 300, "%d acknowledged" % acks)
                self.assertTrue(c.closed_within(5))
        self.assertStillServes()

    def test_some_pings_answered(self):
        """Not every PING is a flood: 20, spread out, all answered."""
        with self.raw() as c:
            c.handshake()
            for i in range(20):
                c.send(c.ping_frame(b"ping%04d" % i))
                time.sleep(0.01)
            c.read_until(lambda: len([f for f in c.frames if isinstance(f, c.F.PingFrame)]) == 20, 5)
            acks = [bytes(f.opaque_data) for f in c.frames if isinstance(f, c.F.PingFrame)]
            self.assertEqual(acks, [b"ping%04d" % i for i in range(20)])
            self.assertIsNone(c.goaway)


class RapidResetTest(BoundsCase):

    def rapid_reset(self, n):
        """HEADERS then RST_STREAM for n streams, each a distinct URL, all
        sent in one go; the client then only reads (a client still sending
        when the server closes gets a TCP reset, which loses the GOAWAY).
        Returns (RawH2 after the close, GOAWAY, the targets)."""
        seed = self.uniq()
        targets = [url("/t/body", size=1000, seed=seed, delay_ms=100, n=i) for i in range(n)]
        c = self.raw()
        self.addCleanup(c.close)
        c.handshake()
        c.send(b"".join(c.headers_frame(1 + 2 * i, c.fields(t)) + c.rst_frame(1 + 2 * i)
                        for i, t in enumerate(targets)))
        goaway = c.read_until(lambda: c.goaway, 5)
        self.assertIsNotNone(goaway, "no GOAWAY after %d resets (closed: %s)" % (n, c.eof))
        self.assertTrue(c.closed_within(5), "connection left open after the GOAWAY")
        time.sleep(0.3)     # fetches the streams started reach the origin
        return c, goaway, targets

    def test_rapid_reset_ends_in_goaway(self):
        """CVE-2023-44487: 3000 streams opened and reset.  After the burst
        of RESET_BURST the connection gets a GOAWAY naming the last stream
        taken, is closed, and most of the 3000 never reach the origin."""
        c, (code, last), targets = self.rapid_reset(3000)
        self.assertEqual(code, ENHANCE_YOUR_CALM)
        taken = (last + 1) // 2
        self.assertGreaterEqual(taken, RESET_BURST, "GOAWAY before the burst: %d" % taken)
        # the bucket refills at 33 a second while the burst is processed
        self.assertLess(taken, 2 * RESET_BURST, "the bound let %d resets in" % taken)
        self.assertEqual([f for f in c.frames if isinstance(f, c.F.HeadersFrame)], [],
                         "a reset stream was answered")
        seen = sum(self.origin.count(t) for t in targets)
        # the burst and what the bucket refilled, nothing after the GOAWAY
        self.assertLessEqual(seen, taken, "the origin saw %d of 3000 reset streams" % seen)
        self.assertEqual(self.wait_connections(0), 0)
        self.assertStillServes()

    def test_rapid_reset_no_stream_after_goaway_processed(self):
        """RFC 9113 section 6.8: streams above the GOAWAY's last-stream-id
        are not processed, not even those in the rest of the read that
        crossed the bound (nghttp2 would start them until its GOAWAY is
        sent: our own bucket stops them)."""
        c, (code, last), targets = self.rapid_reset(2 * RESET_BURST)
        taken = (last + 1) // 2
        beyond = sum(self.origin.count(t) for t in targets[taken:])
        self.assertEqual(beyond, 0, "%d requests beyond last-stream-id %d reached the origin"
                         % (beyond, last))

    def test_a_few_resets_are_fine(self):
        """A browser cancelling 50 requests keeps its connection."""
        seed = self.uniq()
        with H.H2Conn(self.port) as c:
            for i in range(50):
                sid = c.send_request("GET", url("/t/body", size=10, seed=seed, delay_ms=50, n=i))
                c.reset_stream(sid)
            r = c.request("GET", url("/t/body", size=10, seed=seed))
            self.assertOk(r, expected_body(10, seed))
            self.assertIsNone(c.goaway)


class OddRequestTest(BoundsCase):

    def test_connect_and_unknown_methods_501(self):
        with self.raw() as c:
            c.handshake()
            c.send(c.headers_frame(1, [(":method", "CONNECT"),
                                       (":authority", "example.com:443")]))
            c.send(c.headers_frame(3, c.fields("/t/body?size=1", method="BREW")))
            c.read_until(lambda: c.ended(1) and c.ended(3), 5)
            self.assertEqual(c.status(1), 501, c.of(1))
            self.assertEqual(c.status(3), 501, c.of(3))
            self.assertEqual(c.ended(1), ("end", None))
        self.assertEqual(self.origin.total(), 0)

    def test_missing_path_resets_the_stream(self):
        seed = self.uniq()
        with self.raw() as c:
            c.handshake()
            c.send(c.headers_frame(1, [(":method", "GET"), (":scheme", "http"),
                                       (":authority", "x")]))
            c.get(3, url("/t/body", size=3, seed=seed))
            c.read_until(lambda: c.ended(1) and c.ended(3), 5)
            self.assertEqual(c.ended(1), ("rst", PROTOCOL_ERROR), c.of(1))
            self.assertAnswered(c, 3, expected_body(3, seed))

    def test_connection_specific_field_resets_the_stream(self):
        """RFC 9113 §8.2.2: a request with Connection is malformed."""
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            c.get(1, t, [("connection", "keep-alive")])
            c.read_until(lambda: c.ended(1), 5)
            self.assertEqual(c.ended(1), ("rst", PROTOCOL_ERROR), c.of(1))
        self.assertOriginCount(t, 0)

    def test_garbage_after_the_preface(self):
        with self.raw() as c:
            c.send(b"\xff" * 64)
            self.assertTrue(c.closed_within(5))
            if c.goaway is not None:
                self.assertNotEqual(c.goaway[0], NO_ERROR)
        self.assertStillServes()


class LingerTest(BoundsCase):
    """A connection ended with a GOAWAY closes in stages (as HTTP/1.1
    does, RFC 9112 §9.6): the client's frames still in flight are read and
    dropped, so it gets the GOAWAY and a FIN, not a reset that can destroy
    the GOAWAY before it is read."""

    def test_goaway_then_fin_despite_unread_bytes(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        junk = PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\xff" * (1 << 20)
        t = H.send_in_background(s, junk)
        try:
            got = H.read_until_fin(self, s, "the GOAWAY can be lost")
        finally:
            s.close()
            t.join(10)
        frames, off = [], 0
        while off + 9 <= len(got):
            length = int.from_bytes(got[off:off + 3], "big")
            frames.append((got[off + 3], got[off + 9:off + 9 + length]))
            off += 9 + length
        goaways = [payload for kind, payload in frames if kind == 0x7]
        self.assertEqual(len(goaways), 1, frames)
        self.assertNotEqual(int.from_bytes(goaways[0][4:8], "big"), NO_ERROR)
        self.assertEqual(self.wait_connections(0), 0)
        self.assertStillServes()


class LingerStopTest(BoundsCase):

    def tearDown(self):
        pass        # this test stops the daemon itself

    def test_sigterm_ends_a_linger(self):
        """An HTTP/2 connection closing in stages (GOAWAY sent, our side
        shut) whose client keeps its side open and silent does not hold a
        stopping daemon for the linger's 5 s (h2_goaway_all ends it)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            # A DATA frame on stream 0 is a connection error: GOAWAY.
            s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                      + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"x")
            got = H.read_until_fin(self, s, "no FIN after the GOAWAY")
            self.assertIn(b"\x07\x00\x00\x00\x00\x00", got, "no GOAWAY frame on stream 0")
            self.assertEqual(self.wait_connections(1), 1, "the linger ended before the stop")
            t0 = time.monotonic()
            self.proxy.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proxy.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.fail("freshcached still running 5s after SIGTERM")
            self.assertEqual(rc, 0, "exit status after SIGTERM")
            self.assertLess(time.monotonic() - t0, 2.5, "the stop waited for the linger")
        finally:
            s.close()


class LargeBodyTest(BoundsCase):
    """One 100 MiB object in the cache, sent to slow and fast readers."""
    SIZE = 100 * H.MiB
    config = {"cache": {"memory": "256MiB", "max_object_size": "128MiB"},
              "origin": {"read_timeout": "60s"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.target = url("/t/body", size=cls.SIZE, seed="big", cc="max-age=600")
        p = subprocess.run([CURL, "-sS", "-o", os.devnull, "-w", "%{http_code} %{size_download}",
                            "http://127.0.0.1:%d%s" % (cls.port, cls.target)],
                           capture_output=True, text=True, timeout=120)
        if p.stdout != "200 %d" % cls.SIZE:
            raise RuntimeError("filling the 100 MiB object: %r %r" % (p.stdout, p.stderr))
        cls.digest = hashlib.sha256(expected_body(cls.SIZE, "big")).hexdigest()
        expected_body.cache_clear()

    def rss(self):
        return rss_kib(self.proxy.proc.pid)

    def test_slow_readers_cost_no_copy(self):
        """Five clients with a 64 KiB window read 2 MiB each, slowly: the
        body goes out by reference to the cached chunks, so the daemon's
        RSS does not grow by anything near 100 MiB (nor 5 x 100 MiB)."""
        with H.H2Conn(self.port) as warm:
            r = warm.request("HEAD", self.target)
            self.assertHit(r)
        base = self.rss()
        conns = [H.H2Conn(self.port, 10, auto_ack=False) for _ in range(5)]
        for c in conns:
            self.addCleanup(c.close)
        sids = [c.send_request("GET", self.target) for c in conns]
        peak = base
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for c, sid in zip(conns, sids):
                c.pump(0.02)
                r = c.streams[sid]
                if r.unacked >= 16384:
                    c.ack(sid, r.unacked)
            peak = max(peak, self.rss())
            time.sleep(0.05)
        for c, sid in zip(conns, sids):
            r = c.streams[sid]
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.open, "a slow reader's stream ended: %r" % r)
            self.assertGreater(r.received, 256 * 1024, "the slow reader got nothing much")
            self.assertLess(r.received, self.SIZE // 4)
            self.assertIsNone(c.goaway)
        grown = (peak - base) // 1024
        self.assertLess(grown, 24, "RSS grew by %d MiB while 5 slow readers read (base %d MiB)"
                        % (grown, base // 1024))

    def test_fast_reader_gets_it_quickly(self):
        """Readers that acknowledge what they read as python-h2 does: with
        the default 64 KiB windows (a WINDOW_UPDATE for every frame or
        two, at stream and connection level: not a flood), and with large
        windows as browsers open them.  100 MiB, whole and exact, quickly,
        and the RSS stays put."""
        for name, kw in (("default windows", {}),
                         ("16 MiB windows", {"settings": {INITIAL_WINDOW_SIZE: 16 * H.MiB},
                                             "conn_window": 1 << 30})):
            with self.subTest(name):
                base = self.rss()
                with H.H2Conn(self.port, 60, **kw) as c:
                    t0 = time.monotonic()
                    r = c.request("GET", self.target, timeout=120)
                    elapsed = time.monotonic() - t0
                    self.assertEqual(r.status, 200, r)
                    self.assertTrue(r.complete, "incomplete after %d bytes (goaway %r)"
                                    % (len(r.body), c.goaway))
                    self.assertHit(r)
                    self.assertEqual(len(r.body), self.SIZE)
                    self.assertEqual(hashlib.sha256(r.body).hexdigest(), self.digest)
                    self.assertIsNone(c.goaway)
                    del r
                self.assertLess(elapsed, 60, "100 MiB took %.1fs" % elapsed)
                self.assertLess((self.rss() - base) // 1024, 24)

    def test_curl_gets_it_quickly(self):
        p = subprocess.run([CURL, "-sS", "--http2-prior-knowledge", "-o", os.devnull, "-w",
                            "%{http_version} %{http_code} %{size_download} %{time_total}",
                            "http://127.0.0.1:%d%s" % (self.port, self.target)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        version, code, size, total = p.stdout.split()
        self.assertEqual((version, code, int(size)), ("2", "200", self.SIZE), p.stdout)
        self.assertLess(float(total), 30, "100 MiB over HTTP/2 took %ss" % total)


class StalledStreamTest(BoundsCase):
    config = {"limits": {"client_timeout": "2s"}}

    def test_stream_that_never_reads_is_reset(self):
        """A stream whose window stays at 0 is reset (CANCEL) after
        client_timeout; the connection's other streams are served
        meanwhile and after."""
        seed = self.uniq()
        big = url("/t/body", size=H.MiB, seed=seed, cc="max-age=60")
        self.assertOk(self.get(big), expected_body(H.MiB, seed))
        with H.H2Conn(self.port, 10, auto_ack=False, settings={INITIAL_WINDOW_SIZE: 16384},
                      conn_window=1 << 30) as c:
            stalled = c.send_request("GET", big)
            s = c.streams[stalled]
            self.assertTrue(c.wait(lambda: s.received >= 16384, 5), "no DATA at all")
            t_full = time.monotonic()
            others = []
            while s.open and time.monotonic() - t_full < 6:
                sid = c.send_request("GET", url("/t/body", size=100, seed=seed, n=len(others)))
                others.append(c.response(sid, 5))
                c.wait(lambda: not s.open, 0.4)
            waited = time.monotonic() - t_full
            self.assertEqual(s.reset, CANCEL, "stalled stream: reset %r, open %s after %.1fs"
                             % (s.reset, s.open, waited))
            self.assertEqual(s.received, 16384)
            self.assertGreater(waited, 1.8, "reset before client_timeout (2s)")
            self.assertLess(waited, 4.5, "not reset within client_timeout (2s) + the 1s tick")
            self.assertGreaterEqual(len(others), 3)
            for r in others:
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.complete, r)
            self.assertOk(c.request("GET", url("/t/body", size=3, seed=seed)),
                          expected_body(3, seed))
            self.assertIsNone(c.goaway)

    def test_idle_connection_gets_goaway(self):
        with self.raw() as c:
            c.handshake()
            t0 = time.monotonic()
            self.assertTrue(c.closed_within(5), "idle connection open after 5s (client_timeout 2s)")
            self.assertGreater(time.monotonic() - t0, 1.5)
            self.assertEqual(c.goaway, (NO_ERROR, 0))

    def test_slow_but_reading_stream_not_reset(self):
        """A reader that keeps opening its window, however slowly, is not
        cut: progress resets the clock."""
        seed = self.uniq()
        big = url("/t/body", size=H.MiB, seed=seed, cc="max-age=60")
        self.assertOk(self.get(big), expected_body(H.MiB, seed))
        with H.H2Conn(self.port, 10, auto_ack=False, settings={INITIAL_WINDOW_SIZE: 16384},
                      conn_window=1 << 30) as c:
            sid = c.send_request("GET", big)
            r = c.streams[sid]
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4.5:
                c.wait(lambda: r.unacked >= 16384, 2)
                time.sleep(1.0)
                if r.unacked:
                    c.ack(sid, r.unacked)
            self.assertTrue(r.open, "a slow reader was reset: %r" % r.reset)
            self.assertIsNone(r.reset)
            self.assertGreaterEqual(r.received, 4 * 16384)


class SlowClientTest(BoundsCase):
    """limits.header_timeout and limits.min_body_rate over HTTP/2 (short
    here: 1 s, 1 KiB/s; client_timeout 30 s, which alone would wait):
    a preface, a header block or a body trickled is cut; the connection's
    once-a-second tick checks them."""

    config = {"limits": {"header_timeout": "1s", "min_body_rate": "1KiB",
                         "client_timeout": "30s"}}

    def trickle(self, send, parts, gap, limit=8.0):
        """send(part) `gap` seconds apart until it fails or `limit`."""
        t0 = time.monotonic()
        for p in parts:
            if time.monotonic() - t0 > limit:
                return
            try:
                if send(p) is False:
                    return
            except OSError:
                return
            time.sleep(gap)

    def test_silent_connection_closed(self):
        """Nothing at all: the cleartext listener waits header_timeout for
        the first bytes (the preface or a request), not client_timeout."""
        with self.raw() as c:
            self.assertTrue(c.closed_within(8), "a silent connection stayed open")

    def test_trickled_preface_closed(self):
        """The 24 bytes of the client preface a byte every 0.3 s (each byte
        would restart client_timeout): closed before it is complete."""
        with self.raw() as c:
            c.pending = b""
            self.trickle(lambda b: c.send(b) and not c.closed_within(0.3 - 0.05),
                         [PREFACE[i:i + 1] for i in range(len(PREFACE))], 0.05)
            self.assertTrue(c.eof or c.closed_within(3), "a trickled preface was waited for")
        self.assertStillServes()

    def test_preface_without_settings_closed(self):
        """The magic, but never the SETTINGS frame that must follow it."""
        with self.raw() as c:
            c.pending = b""
            c.send(PREFACE)
            self.assertTrue(c.closed_within(8), "no SETTINGS, yet the connection stayed open")
            self.assertEqual(c.goaway and c.goaway[0], PROTOCOL_ERROR, c.frames)
        self.assertStillServes()

    def test_idle_after_preface_not_cut(self):
        """header_timeout is for the preface and for each header block: an
        established connection that waits between streams is
        client_timeout's."""
        seed = self.uniq()
        with H.H2Conn(self.port) as c:
            self.assertOk(c.request("GET", url("/t/body", size=3, seed=seed)),
                          expected_body(3, seed))
            self.assertFalse(c.wait_closed(2.5), "an idle connection was cut")
            self.assertOk(c.request("GET", url("/t/body", size=4, seed=seed)),
                          expected_body(4, seed))
            self.assertIsNone(c.goaway)

    def test_stalled_header_block_ends_the_connection(self):
        """HEADERS without END_HEADERS and no CONTINUATION: nothing else
        may come on the connection (RFC 9113 §6.10), so it ends: GOAWAY
        PROTOCOL_ERROR, and the request never reaches the origin."""
        t = url("/t/body", size=3, seed=self.uniq())
        with self.raw() as c:
            c.handshake()
            block = c.enc.encode(c.fields(t))
            c.send(c.headers_frame(1, block=block[:5], end_headers=False))
            self.assertTrue(c.closed_within(8), "a stalled header block was waited for")
            self.assertEqual(c.goaway, (PROTOCOL_ERROR, 0), c.frames)
        self.assertOriginCount(t, 0)
        self.assertStillServes()

    def test_trickled_headers_frame_ends_the_connection(self):
        """One HEADERS frame a byte every 0.2 s (CONTINUATIONs are bounded
        in number, a frame's bytes are not)."""
        t = url("/t/body", size=3, seed=self.uniq())
        with self.raw() as c:
            c.handshake()
            frame = c.headers_frame(1, c.fields(t, extra=[("x-pad", "p" * 100)]))
            self.trickle(lambda b: c.send(b) and not c.closed_within(0.15),
                         [frame[i:i + 1] for i in range(len(frame))], 0.05)
            self.assertTrue(c.eof or c.closed_within(3), "a trickled header block was waited for")
            self.assertEqual(c.goaway and c.goaway[0], PROTOCOL_ERROR, c.frames)
            self.assertIsNone(c.status(1))
        self.assertOriginCount(t, 0)
        self.assertStillServes()

    def test_header_block_in_pieces_within_the_limit(self):
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed)
        with self.raw() as c:
            c.handshake()
            block = c.enc.encode(c.fields(t))
            c.send(c.headers_frame(1, block=block[:4], end_headers=False))
            time.sleep(0.3)
            c.send(c.continuation_frame(1, block[4:8]))
            time.sleep(0.3)
            c.send(c.continuation_frame(1, block[8:], end_headers=True))
            c.read_until(lambda: c.ended(1), 5)
            self.assertAnswered(c, 1, expected_body(3, seed))

    def slow_upload(self, c, sid, seconds=8.0):
        """10 bytes every 0.2 s (50 B/s) until the stream ends or `seconds`."""
        r = c.streams[sid]
        t0 = time.monotonic()
        while r.open and not c.eof and time.monotonic() - t0 < seconds:
            c.h2.send_data(sid, b"x" * 10)
            c.flush()
            c.wait(lambda: not r.open, 0.2)
        return r

    def test_slow_body_answered_408_then_reset(self):
        """A body at 50 B/s: 408 (complete, END_STREAM), then RST_STREAM
        NO_ERROR (stop sending: RFC 9113 §8.1); the connection and its
        other streams go on."""
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed + "-post")
        with H.H2Conn(self.port) as c:
            sid = c.send_request("POST", t, {"content-length": "100000"}, end_stream=False)
            r = self.slow_upload(c, sid)
            self.assertEqual(r.status, 408, "stream: status %r reset %r" % (r.status, r.reset))
            self.assertTrue(r.complete, "the 408 did not end with END_STREAM")
            self.assertTrue(c.wait(lambda: r.reset is not None, 3), "no RST_STREAM after the 408")
            self.assertEqual(r.reset, NO_ERROR)
            self.assertOk(c.request("GET", url("/t/body", size=5, seed=seed)),
                          expected_body(5, seed))
            self.assertIsNone(c.goaway)
        self.assertStillServes()

    def test_slow_body_after_the_response_reset(self):
        """A response already complete (here the 501 for an unknown method,
        sent before any of the body) and a body that never comes: the
        stream is only reset, NO_ERROR (the response stands)."""
        with H.H2Conn(self.port) as c:
            sid = c.send_request("BREW", "/t/body?size=3", end_stream=False)
            r = c.streams[sid]
            self.assertTrue(c.wait(lambda: r.complete, 5), "no response")
            self.assertEqual(r.status, 501)
            self.assertTrue(c.wait(lambda: r.reset is not None, 8), "the stream stayed open")
            self.assertEqual(r.reset, NO_ERROR)
            self.assertIsNone(c.goaway)
        self.assertEqual(self.origin.total(), 0)

    def test_body_at_the_rate_passes(self):
        seed = self.uniq()
        t = url("/t/body", size=3, seed=seed + "-post")
        body = b"y" * 20000
        with H.H2Conn(self.port) as c:
            sid = c.send_request("POST", t, {"content-length": str(len(body))}, end_stream=False)
            for i in range(0, len(body), 5000):
                c.send_body(sid, body[i:i + 5000], end_stream=i + 5000 >= len(body))
                c.pump(0.15)
            self.assertOk(c.response(sid), expected_body(3, seed + "-post"))
        self.assertEqual(self.origin.log(t)[0]["body_length"], len(body))


class GoawayCase(BoundsCase):
    """A slow request in flight on an HTTP/2 connection, then a signal."""

    def in_flight(self):
        seed = self.uniq()
        t = url("/t/body", size=100000, delay_ms=1000, seed=seed)
        c = H.H2Conn(self.port, 10)
        self.addCleanup(c.close)
        ok = c.request("GET", url("/t/body", size=5, seed=seed))     # stream 1
        self.assertOk(ok, expected_body(5, seed))
        sid = c.send_request("GET", t)                                 # stream 3
        idle = H.H2Conn(self.port, 10)
        self.addCleanup(idle.close)
        self.assertOk(idle.request("GET", url("/t/body", size=5, seed=seed)),
                      expected_body(5, seed))
        time.sleep(0.3)
        return c, sid, idle, t, seed

    def check_goaway(self, c, sid, idle, t, seed):
        self.assertIsNotNone(c.wait(lambda: c.goaway, 3), "no GOAWAY")
        self.assertEqual(c.goaway, (NO_ERROR, sid), "GOAWAY (code, last stream id)")
        # a new stream after the GOAWAY is not taken
        late_t = url("/t/body", size=7, seed=seed + "-late")
        late = c.send_request("GET", late_t)
        r = c.response(sid)
        self.assertOk(r, expected_body(100000, seed))
        self.assertTrue(c.wait_closed(5), "connection left open once its streams were done")
        self.assertIsNone(c.streams[late].status, "a stream opened after the GOAWAY was served")
        self.assertOriginCount(late_t, 0)
        # the idle connection: GOAWAY too, and closed
        self.assertTrue(idle.wait_closed(3), "idle connection not closed")
        self.assertEqual(idle.goaway, (NO_ERROR, 1))


class GoawayOnStopTest(GoawayCase):

    def tearDown(self):
        pass        # the daemon was stopped on purpose

    def test_sigterm(self):
        c, sid, idle, t, seed = self.in_flight()
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.check_goaway(c, sid, idle, t, seed)
        try:
            rc = self.proxy.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("freshcached still running 5s after SIGTERM")
        self.assertEqual(rc, 0)


class GoawayOnReloadTest(GoawayCase):

    def test_sighup(self):
        c, sid, idle, t, seed = self.in_flight()
        self.proxy.proc.send_signal(signal.SIGHUP)
        self.check_goaway(c, sid, idle, t, seed)
        self.assertTrue(self.proxy.alive())
        self.assertStillServes()


if __name__ == "__main__":
    H.main()
