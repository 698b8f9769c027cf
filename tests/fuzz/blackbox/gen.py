"""gen.py — what the fuzzer sends, as pure functions of (seed, indexes).

Nothing here does I/O or reads a clock: a connection's plan is a function of
(seed, connection index) and an origin response plan a function of (seed,
token, what the request looked like), so the *set* of inputs a seed produces
is fixed even though the interleaving under concurrency is not.

Tokens.  Every request target the client builds starts with

    /fz/<seed>/<conn>/<req>...     unique: one exchange
    /fz/<seed>/s/<key>...          shared: a small set of keys that many
                                   connections request (cache hits,
                                   coalescing, revalidation, Vary)

and the origin derives its answer from that token (see origin_plan), so the
response an exchange gets does not depend on which origin connection the
proxy happened to use.  A target the mutations destroyed gets an answer from
a seeded fallback stream instead.

Scenarios couple the two sides of one exchange: scenario(seed, conn, req) is
computed by both the client (when it builds the request) and the origin (when
the token arrives).  "pass-leave" is the sequence of issue 18: an uncacheable
response whose head, body and end go out in ONE write while the client has
already closed or reset its connection.
"""

import random
import re
import struct

# ---------------------------------------------------------------------------
# RNG derivation


def rng(seed, *parts):
    """An independent stream for (seed, parts...).  String seeds are hashed
    with SHA-512 by random.Random (version 2): stable across runs and
    unaffected by PYTHONHASHSEED."""
    return random.Random("fz:%s:%s" % (seed, ":".join(str(p) for p in parts)))


def wchoice(r, table):
    """table: [(weight, value)]."""
    total = sum(w for w, _ in table)
    x = r.random() * total
    for w, v in table:
        x -= w
        if x < 0:
            return v
    return table[-1][1]


def n_requests(seed, conn):
    """How many requests connection `conn` sends (the origin needs it too)."""
    return wchoice(rng(seed, "n", conn), [(55, 1), (18, 2), (10, 3), (7, 4), (6, 5), (4, 8)])


def scenario(seed, conn, req):
    """Only a connection's last request has a scenario other than random: how
    the connection ends belongs to it."""
    if req != n_requests(seed, conn) - 1:
        return "random"
    r = rng(seed, "x", conn, req)
    return wchoice(r, [(12, "pass-leave"), (88, "random")])


# ---------------------------------------------------------------------------
# byte mutations


def mutate(r, data, n=None):
    """Flip / insert / delete / duplicate / replace a few bytes."""
    b = bytearray(data)
    for _ in range(n or r.choice((1, 1, 1, 2, 3))):
        if not b:
            b += bytes([r.randrange(256)])
            continue
        op = r.randrange(7)
        i = r.randrange(len(b))
        if op == 0:                                   # bit flip
            b[i] ^= 1 << r.randrange(8)
        elif op == 1:                                 # insert random bytes
            b[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 4)))
        elif op == 2:                                 # insert a syntax byte
            b[i:i] = r.choice((b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"\0", b";", b",",
                               b"\r\n\r\n", b"0\r\n\r\n", b"\x7f", b"\xff"))
        elif op == 3:                                 # delete a range
            del b[i:i + r.randint(1, 8)]
        elif op == 4:                                 # duplicate a range
            j = min(len(b), i + r.randint(1, 32))
            b[j:j] = b[i:j]
        elif op == 5:                                 # replace with a syntax byte
            b[i] = r.choice(b"\r\n :\t\0;,\"=-0123456789abcdefABCDEF")
        else:                                         # swap two bytes
            j = r.randrange(len(b))
            b[i], b[j] = b[j], b[i]
    return bytes(b)


def filler(r, n, alphabet=b"abcdefghijklmnopqrstuvwxyz0123456789"):
    if n <= 0:
        return b""
    unit = bytes(r.choice(alphabet) for _ in range(min(n, 61))) + b"\n"
    return (unit * (n // len(unit) + 1))[:n]


def chunked(r, body, chunk_max=None, ext=False, trailers=()):
    out = []
    i = 0
    cm = chunk_max or r.choice((7, 100, 1000, 8192, 65536))
    while i < len(body):
        n = r.randint(1, cm)
        piece = body[i:i + n]
        i += len(piece)
        size = b"%x" % len(piece)
        if r.random() < 0.1:
            size = size.upper()
        if r.random() < 0.05:
            size = b"000" + size
        out.append(size + (b";ext=" + filler(r, 5) if ext else b"") + b"\r\n" + piece + b"\r\n")
    out.append(b"0" + (b";last" if ext else b"") + b"\r\n")
    for t in trailers:
        out.append(t + b"\r\n")
    out.append(b"\r\n")
    return out        # a list: callers may write chunk by chunk


def bad_chunked(r, body):
    """Chunked encoding that breaks somewhere."""
    parts = chunked(r, body)
    kind = r.randrange(9)
    if kind == 0:                                   # bad hex size
        parts.insert(r.randrange(len(parts)), r.choice((b"zz\r\n", b"-1\r\n", b"0x10\r\n", b" \r\n",
                                                        b"1 0\r\n", b"g\r\n")))
    elif kind == 1:                                 # size larger than what follows
        parts.insert(0, b"%x\r\n" % (len(body) + r.randint(1, 5000)))
    elif kind == 2:                                 # overflowing size
        parts.insert(0, r.choice((b"ffffffffffffffffff\r\n", b"10000000000000000\r\n",
                                  b"7fffffffffffffff\r\n", b"fffffffffffffff0\r\n")))
    elif kind == 3:                                 # missing CRLF after data
        if len(parts) > 1:
            parts[0] = parts[0][:-2]
    elif kind == 4:                                 # no last chunk (EOF ends it)
        parts = parts[:-2]
    elif kind == 5:                                 # bare LF everywhere
        parts = [p.replace(b"\r\n", b"\n") for p in parts]
    elif kind == 6:                                 # trailer garbage
        parts[-1:] = [b"X-Trailer: a\r\n", b"\x01\x02 bad\r\n", b"\r\n"]
    elif kind == 7:                                 # huge extension
        parts.insert(0, b"1;" + b"e" * r.choice((100, 5000, 70000)) + b"\r\nA\r\n")
    else:                                           # mutate
        joined = mutate(r, b"".join(parts), 2)
        parts = [joined]
    return parts


# ---------------------------------------------------------------------------
# requests (the hostile client)

METHODS = [(60, "GET"), (11, "HEAD"), (14, "POST"), (4, "PUT"), (3, "DELETE"), (2, "OPTIONS"),
           (2, "PATCH"), (1, "TRACE"), (1, "CONNECT"), (1, "get"), (1, "FOO"), (1, "PRI"),
           (1, "G ET")]

SUFFIXES = [(60, ""), (12, ".html"), (10, ".3f2a9c1d.js"), (10, ".swr"), (8, ".txt")]

N_SHARED = 24


class Request:
    """One request: `parts` are the writes (head, body, ... — joined unless
    the connection sends slowly), `method` tells the response reader whether
    to expect a body, `expect100` makes the client pause after the head."""
    __slots__ = ("parts", "method", "expect100", "desc", "valid")

    def __init__(self, parts, method, expect100=False, desc="", valid=True):
        self.parts = parts
        self.method = method
        self.expect100 = expect100
        self.desc = desc
        self.valid = valid

    @property
    def data(self):
        return b"".join(self.parts)


def _target(r, seed, conn, req, port, sc):
    kind = "unique" if sc == "pass-leave" else wchoice(
        r, [(66, "unique"), (28, "shared"), (6, "weird")])
    if kind == "unique":
        path = "/fz/%s/%d/%d" % (seed, conn, req)
    elif kind == "shared":
        path = "/fz/%s/s/%d" % (seed, r.randrange(N_SHARED))
    else:
        return r.choice(["*", "", "fz", "/%00", "/../../etc/passwd", "//x//y", "/?",
                         "/" + "a" * r.choice((100, 4000, 20000)), "/%zz%", "/\x7f", "/ /",
                         "http://", "http://127.0.0.1:%d" % port, "127.0.0.1:%d" % port,
                         "/fz#frag", "/fz/%s/%d/%d?" % (seed, conn, req) + "q" * 9000])
    path += wchoice(r, SUFFIXES)
    if kind == "unique" and r.random() < 0.3:
        path += r.choice(("?a=1", "?a=1&a=2", "?x=%20y", "?" + "k" * 300, "?q=%ff%00",
                          "?utm=1#frag", "?;"))
    if sc != "pass-leave" and r.random() < 0.06:
        host = r.choice(("127.0.0.1:%d" % port, "example.com", "EXAMPLE.com:80", "[::1]:1", "a b",
                         "127.0.0.1:%d@evil" % port))
        path = r.choice(("http://", "https://", "HTTP://", "ftp://")) + host + path
    return path


def _headers(r, method, port, sc, body_len):
    """Request header fields (list of (name, value)) and notes."""
    hs = []
    host_kind = "normal" if sc == "pass-leave" else wchoice(
        r, [(90, "normal"), (3, "none"), (2, "dup"), (2, "empty"), (3, "odd")])
    if host_kind == "normal":
        hs.append(("Host", "127.0.0.1:%d" % port))
    elif host_kind == "dup":
        hs += [("Host", "a.example"), ("Host", "b.example")]
    elif host_kind == "empty":
        hs.append(("Host", ""))
    elif host_kind == "odd":
        hs.append(("Host", r.choice(("a b", "x" * 300, "[::1", "h:99999", "\x01"))))
    if sc == "pass-leave":
        if r.random() < 0.3:
            hs.append(("User-Agent", "fuzz/1"))
        return hs
    extras = [
        (20, lambda: ("User-Agent", r.choice(("fuzz/1", "curl/8", "x" * 200)))),
        (15, lambda: ("Accept", r.choice(("*/*", "text/html", "application/json;q=0.5")))),
        (12, lambda: ("Accept-Encoding", r.choice(("gzip", "br", "identity", "gzip, br", "")))),
        (10, lambda: ("Cache-Control", r.choice(("no-cache", "no-store", "max-age=0", "max-age=5",
                                                 "max-stale", "max-stale=10", "min-fresh=100",
                                                 "only-if-cached", "no-transform",
                                                 "max-age=abc", "max-age=99999999999999999999",
                                                 "no-cache, no-store, max-age=0", ",,,", "=")))),
        (3, lambda: ("Pragma", "no-cache")),
        (8, lambda: ("If-None-Match", r.choice(('"e-0"', '"e-%d"' % r.randrange(N_SHARED), "*",
                                                'W/"e-1"', '"a", "b", W/"c"', "garbage", '"')))),
        (5, lambda: ("If-Modified-Since", r.choice(("Sat, 01 Jan 2000 00:00:00 GMT",
                                                    "Fri, 31 Dec 2099 23:59:59 GMT", "yesterday",
                                                    "Sunday, 06-Nov-94 08:49:37 GMT")))),
        (2, lambda: ("If-Match", r.choice(("*", '"e-1"')))),
        (2, lambda: ("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")),
        (7, lambda: ("Range", r.choice(("bytes=0-10", "bytes=-5", "bytes=5-", "bytes=0-0,2-3",
                                        "bytes=100000-", "bytes=5-1", "bytes=x", "lines=1-2",
                                        "bytes=0-18446744073709551616")))),
        (2, lambda: ("If-Range", r.choice(('"e-1"', "Sat, 01 Jan 2000 00:00:00 GMT")))),
        (6, lambda: ("Cookie", "sid=%d" % r.randrange(5))),
        (3, lambda: ("Authorization", "Bearer x")),
        (6, lambda: ("Connection", r.choice(("close", "keep-alive", "Upgrade", "close, keep-alive",
                                             "x-hop", "TE")))),
        (2, lambda: ("Upgrade", r.choice(("websocket", "h2c")))),
        (2, lambda: ("TE", "trailers")),
        (2, lambda: ("Max-Forwards", r.choice(("0", "1", "-1")))),
        (2, lambda: ("Via", "1.1 other")),
        (3, lambda: ("X-Forwarded-For", "10.0.0.%d" % r.randrange(256))),
        (1, lambda: ("Proxy-Connection", "keep-alive")),
        (1, lambda: ("Keep-Alive", "timeout=1")),
        (2, lambda: ("Surrogate-Capability", 'x="Surrogate/1.0"')),
        (1, lambda: ("Content-Type", "text/plain")),
    ]
    for _ in range(wchoice(r, [(30, 0), (35, 1), (20, 2), (10, 4), (5, 8)])):
        hs.append(wchoice(r, extras)())
    # hostile shapes
    if r.random() < 0.03:                       # huge header, around the 16 KiB bound
        hs.append(("X-Big", "b" * r.choice((8000, 16000, 16300, 17000, 40000, 300000))))
    if r.random() < 0.02:                       # many headers
        hs += [("X-H%d" % i, "v") for i in range(r.choice((100, 500, 3000)))]
    if r.random() < 0.03:                       # duplicate an existing one
        if hs:
            hs.insert(r.randrange(len(hs) + 1), r.choice(hs))
    return hs


def _body(r, method, sc):
    if method in ("POST", "PUT", "PATCH") or (method != "GET" and r.random() < 0.1) or \
            (sc != "pass-leave" and r.random() < 0.03):
        return filler(r, wchoice(r, [(20, 0), (45, r.randint(1, 200)), (25, r.randint(200, 8000)),
                                     (8, r.randint(8000, 100000)), (2, r.randint(100000, 600000))]))
    return None


def request(seed, conn, req, port):
    """The request `req` of connection `conn`."""
    r = rng(seed, "q", conn, req)
    sc = scenario(seed, conn, req)
    if sc == "pass-leave":
        method = wchoice(r, [(70, "GET"), (30, "POST")])
    else:
        method = wchoice(r, METHODS)
    target = _target(r, seed, conn, req, port, sc)
    version = "HTTP/1.1" if sc == "pass-leave" else wchoice(
        r, [(90, "HTTP/1.1"), (6, "HTTP/1.0"), (1, "HTTP/2.0"), (1, "HTTP/1.2"), (1, "HTTP/0.9"),
            (1, "http/1.1")])
    body = _body(r, method, sc)
    hs = _headers(r, method, port, sc, len(body) if body is not None else 0)
    framing = None
    if body is not None:
        framing = "length" if sc == "pass-leave" else wchoice(
            r, [(62, "length"), (24, "chunked"), (3, "bad-chunked"), (2, "cl-dup"),
                (2, "cl-conflict"), (2, "cl+te"), (2, "te-odd"), (2, "cl-bad"), (1, "none")])
    expect100 = body is not None and bool(body) and sc != "pass-leave" and r.random() < 0.08
    if expect100:
        hs.append(("Expect", "100-continue"))
    elif sc != "pass-leave" and r.random() < 0.01:
        hs.append(("Expect", r.choice(("100-continue", "200-ok", ""))))
    parts_body = []
    if body is not None:
        if framing == "length":
            hs.append(("Content-Length", str(len(body))))
            parts_body = [body]
        elif framing == "chunked":
            hs.append(("Transfer-Encoding", "chunked"))
            parts_body = chunked(r, body, ext=r.random() < 0.1,
                                 trailers=[b"X-T: 1"] if r.random() < 0.1 else ())
        elif framing == "bad-chunked":
            hs.append(("Transfer-Encoding", "chunked"))
            parts_body = bad_chunked(r, body)
        elif framing == "cl-dup":
            hs += [("Content-Length", str(len(body)))] * 2
            parts_body = [body]
        elif framing == "cl-conflict":
            hs += [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 1))]
            parts_body = [body]
        elif framing == "cl+te":
            hs += [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
            parts_body = chunked(r, body) if r.random() < 0.5 else [body]
        elif framing == "te-odd":
            hs.append(("Transfer-Encoding", r.choice(("gzip", "chunked, chunked", "gzip, chunked",
                                                      " chunked", "Chunked", "identity",
                                                      "chunked;x=1", "xchunked"))))
            parts_body = chunked(r, body)
        elif framing == "cl-bad":
            hs.append(("Content-Length", r.choice(("-1", "+%d" % len(body), "0x10", "%d " % len(body),
                                                   "1 2", "99999999999999999999", "", "abc"))))
            parts_body = [body]
        else:
            parts_body = [body]
    if method == "GET" and body is None and r.random() < 0.02 and sc != "pass-leave":
        hs.append(("Content-Length", "0"))
    if sc != "pass-leave" and r.random() < 0.02:
        hs.append(("Transfer-Encoding", "chunked"))     # and no chunked body follows
    if sc != "pass-leave" and r.random() < 0.1:
        r.shuffle(hs)
    eol = b"\r\n"
    lines = [("%s %s %s" % (method, target, version)).encode("latin-1", "replace")]
    for k, v in hs:
        lines.append(("%s: %s" % (k, v)).encode("latin-1", "replace"))
    valid = sc == "pass-leave"
    if sc != "pass-leave":
        x = r.random()
        if x < 0.02:                                # obs-fold
            i = r.randint(1, len(lines))
            lines.insert(i, b" folded")
        elif x < 0.04:                              # bare LF line endings
            eol = b"\n"
        elif x < 0.05:                              # mixed
            lines = [ln + (b"\n" if r.random() < 0.5 else b"") for ln in lines]
        elif x < 0.06:                              # space before colon / no colon
            lines.append(r.choice((b"X-Sp : v", b"NoColon", b": novalue", b"X-Nul: a\0b",
                                   b"X-Ctl: \x01\x02", b"X-8bit: \xe9t\xe9", b"\tX-Tab: v")))
        elif x < 0.07:                              # leading empty lines (tolerated by RFC)
            lines.insert(0, b"")
    head = eol.join(lines) + eol + eol
    parts = [head] + [p for p in parts_body if p]
    desc = "%s %s %s body=%s/%s" % (method, target[:60], version,
                                    "-" if body is None else len(body), framing)
    if sc != "pass-leave" and r.random() < 0.12:
        data = mutate(r, b"".join(parts))
        parts = [data]
        expect100 = False
        desc += " mutated"
        valid = False
    return Request(parts, method.upper(), expect100, desc, valid)


# ---------------------------------------------------------------------------
# connections


class ConnPlan:
    """requests: [Request]; mode: 'seq' | 'pipeline' | 'slow';
    groups: list of lists of request indexes sent in one write (pipeline);
    end: how the connection ends (see client.py); end_at: a byte count for
    mid-response ends or the truncation point; slow_read: seconds to sleep
    between reads (0 = read at full speed)."""

    def __init__(self, conn):
        self.conn = conn
        self.requests = []
        self.mode = "seq"
        self.groups = []
        self.end = "normal"
        self.end_at = 0
        self.slow_read = 0.0
        self.split_seed = 0

    def describe(self):
        return "conn %d: %s, %d request(s), end=%s%s%s" % (
            self.conn, self.mode, len(self.requests), self.end,
            "@%d" % self.end_at if self.end_at else "",
            ", slow reader" if self.slow_read else "")


ENDS = [(44, "normal"), (11, "fin-after-send"), (8, "rst-after-send"), (10, "shut-wr"),
        (9, "rst-mid-response"), (6, "fin-mid-response"), (8, "truncate"), (1, "idle"),
        (3, "rst-after-head")]


def conn_plan(seed, conn, port):
    r = rng(seed, "c", conn)
    p = ConnPlan(conn)
    n = n_requests(seed, conn)
    p.mode = wchoice(r, [(62, "seq"), (30, "pipeline"), (8, "slow")])
    p.requests = [request(seed, conn, i, port) for i in range(n)]
    if p.mode == "pipeline":
        if n == 1:
            p.groups = [[0]]
        else:
            i = 0
            while i < n:
                k = r.randint(2, 5)
                p.groups.append(list(range(i, min(n, i + k))))
                i += k
    else:
        p.groups = [[i] for i in range(n)]
    sc = scenario(seed, conn, n - 1)
    if sc == "pass-leave":
        p.end = wchoice(r, [(55, "fin-after-send"), (20, "rst-after-send"), (10, "rst-after-head"),
                            (10, "rst-mid-response"), (5, "shut-wr")])
    else:
        p.end = wchoice(r, ENDS)
    if p.end in ("rst-mid-response", "fin-mid-response"):
        p.end_at = wchoice(r, [(40, r.randint(0, 200)), (40, r.randint(200, 3000)),
                               (20, r.randint(3000, 300000))])
    elif p.end == "truncate":
        p.end_at = r.randint(0, max(0, len(p.requests[-1].data) - 1))
    if r.random() < 0.05:
        p.slow_read = r.choice((0.01, 0.05, 0.2))
    p.split_seed = r.randrange(1 << 30)
    # how a truncated request ends: close, reset, half-close, or wait
    p.trunc_end = wchoice(r, [(40, "fin"), (30, "rst"), (25, "shut-wr"), (5, "wait")])
    return p


# ---------------------------------------------------------------------------
# origin responses (the broken origin)

TOKEN_RE = re.compile(rb"^/fz/(\d+)/(?:(\d+)/(\d+)|s/(\d+))")

STATUSES = [(58, 200), (3, 203), (5, 204), (3, 206), (3, 301), (2, 302), (5, 304), (2, 307),
            (2, 400), (4, 404), (2, 410), (3, 500), (2, 502), (2, 503), (1, 299), (1, 999),
            (1, 600), (1, 100), (1, 101), (1, 0)]

CACHEABILITY = [
    (16, []), (18, [("Cache-Control", "max-age=60")]),
    (5, [("Cache-Control", "public, max-age=300")]), (3, [("Cache-Control", "s-maxage=10")]),
    (8, [("Cache-Control", "no-store")]), (6, [("Cache-Control", "private")]),
    (4, [("Cache-Control", "no-cache")]), (3, [("Cache-Control", "max-age=0, must-revalidate")]),
    (3, [("Cache-Control", "max-age=1, stale-while-revalidate=30")]),
    (3, [("Cache-Control", "max-age=1, stale-if-error=60")]),
    (5, [("Set-Cookie", "sid=1; Path=/"), ("Cache-Control", "max-age=60")]),
    (3, [("Expires", "Thu, 01 Jan 2099 00:00:00 GMT")]),
    (2, [("Expires", "0")]),
    (2, [("Cache-Control", "max-age=abc, no-store=x, private=\"Set-Cookie\"")]),
    (2, [("Cache-Control", "max-age=99999999999999999999999")]),
    (2, [("Cache-Control", "max-age=60"), ("Cache-Control", "no-store")]),
    (1, [("Cache-Control", "max-age=60, no-cache=\"Set-Cookie\""), ("Set-Cookie", "a=b")]),
    (2, [("Surrogate-Control", "max-age=100"), ("Cache-Control", "no-cache")]),
]

UNCACHEABLE = [[("Cache-Control", "no-store")], [("Cache-Control", "private")],
               [("Set-Cookie", "sid=%d")], [("Cache-Control", "no-store, private")],
               [("Cache-Control", "no-cache")], [("Cache-Control", "max-age=0")], []]


class ResponsePlan:
    """actions: ('sleep', s) | ('send', bytes) | ('close',) | ('rst',) |
    ('keep',) — keep the connection for the next request.  early: answer
    before reading the request body."""

    def __init__(self):
        self.actions = []
        self.early = False
        self.desc = ""


def _status_line(r, status, valid):
    reason = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found"}.get(status, "X")
    if valid:
        return b"HTTP/1.1 %03d %s" % (status, reason.encode())
    v = wchoice(r, [(92, b"HTTP/1.1"), (4, b"HTTP/1.0"), (1, b"HTTP/2"), (1, b"http/1.1"),
                    (1, b"HTTP/1.1 "), (1, b"ICY")])
    reason = wchoice(r, [(90, reason.encode()), (4, b""), (2, b"x" * 3000), (2, b"\x80\xff"),
                         (2, b"O\tK")])
    code = b"%03d" % status if status else r.choice((b"2000", b"20", b"abc", b"-1", b""))
    return v + b" " + code + (b" " + reason if reason or r.random() < 0.5 else b"")


def _split_writes(r, data, head_len, forced=None):
    """How the bytes go out: one write, head | rest, or random pieces."""
    how = forced or wchoice(r, [(42, "one"), (22, "head|rest"), (24, "pieces"), (8, "head|body|end"),
                                (4, "bytewise-head")])
    acts = []
    if how == "one" or len(data) < 2:
        return [("send", data)], how
    if how == "head|rest" and 0 < head_len < len(data):
        return [("send", data[:head_len]), ("sleep", r.choice((0, 0.001, 0.01))),
                ("send", data[head_len:])], how
    if how == "head|body|end" and 0 < head_len < len(data) - 5:
        cut = r.randint(head_len + 1, len(data) - 1)
        return [("send", data[:head_len]), ("sleep", r.choice((0, 0.002, 0.01))),
                ("send", data[head_len:cut]), ("sleep", r.choice((0, 0.002, 0.01))),
                ("send", data[cut:])], how
    if how == "bytewise-head" and 0 < head_len <= 400:
        for i in range(head_len):
            acts.append(("send", data[i:i + 1]))
        acts.append(("send", data[head_len:]))
        return [a for a in acts if a[1]], how
    k = r.randint(2, 6)
    cuts = sorted(set(r.randrange(1, len(data)) for _ in range(k - 1)))
    prev = 0
    for c in cuts + [len(data)]:
        acts.append(("send", data[prev:c]))
        acts.append(("sleep", r.choice((0, 0, 0.001, 0.005, 0.02))))
        prev = c
    return acts[:-1], "pieces"


def origin_plan(seed, target, method, req_headers, arrival):
    """The answer to one request from the proxy.  target: bytes; method: str;
    req_headers: {lower name: value}; arrival: a counter, used only when the
    target carries no token (or a shared key: its n-th fetch)."""
    m = TOKEN_RE.match(target)
    sc = "random"
    key = None
    if m and m.group(1) == str(seed).encode() and m.group(2) is not None:
        conn, req = int(m.group(2)), int(m.group(3))
        sc = scenario(seed, conn, req)
        r = rng(seed, "o", conn, req, method)
    elif m and m.group(4) is not None:
        key = int(m.group(4))
        r = rng(seed, "s", key, arrival)
    else:
        r = rng(seed, "of", arrival)
    plan = ResponsePlan()
    if sc == "pass-leave":
        return _pass_leave(r, plan, method)

    # --- timing before the head
    x = r.random()
    if x < 0.012:
        plan.actions.append(("sleep", r.uniform(2.1, 2.6)))     # past origin.read_timeout
    elif x < 0.10:
        plan.actions.append(("sleep", r.choice((0.001, 0.005, 0.02, 0.05))))

    # --- total failures
    x = r.random()
    if x < 0.015:
        plan.actions.append(("close",))
        plan.desc = "close without answer"
        return plan
    if x < 0.025:
        plan.actions.append(("rst",))
        plan.desc = "reset without answer"
        return plan
    if x < 0.04:
        junk = bytes(r.randrange(256) for _ in range(r.randint(1, 300)))
        if r.random() < 0.5:
            junk = b"HTTP/1.1 200 OK\r\n" + junk
        plan.actions += [("send", junk), r.choice((("close",), ("rst",)))]
        plan.desc = "garbage head"
        return plan
    has_body = req_headers.get("content-length", "0") not in ("", "0") or \
        "transfer-encoding" in req_headers
    if has_body and r.random() < 0.08:
        plan.early = True       # answer before reading the request body, then close

    # --- interim responses
    pre = b""
    x = r.random()
    if x < 0.12:
        for _ in range(r.choice((1, 1, 2, 3))):
            st = wchoice(r, [(40, 100), (40, 103), (10, 102), (5, 199), (5, 101)])
            pre += b"HTTP/1.1 %d X\r\n" % st
            if st == 103:
                pre += b"Link: </a.css>; rel=preload\r\n"
            if r.random() < 0.2:
                pre += b"X-Interim: " + filler(r, r.choice((5, 500, 9000))) + b"\r\n"
            pre += b"\r\n"

    # --- status and headers
    status = wchoice(r, STATUSES)
    if key is not None and ("if-none-match" in req_headers or "if-modified-since" in req_headers) \
            and r.random() < 0.6:
        status = 304
    head_valid = r.random() < 0.9
    hs = []
    if r.random() < 0.3:
        hs.append(("Date", r.choice(("Mon, 01 Jan 2024 00:00:00 GMT",
                                     "Thu, 01 Jan 2099 00:00:00 GMT", "garbage"))))
    hs += wchoice(r, CACHEABILITY)
    if key is not None and r.random() < 0.6:
        hs.append(("Cache-Control", "max-age=%d" % r.choice((1, 2, 30, 300))))
    if r.random() < 0.4:
        hs.append(("ETag", r.choice(('"e-%d"' % (key or 0), 'W/"e-%d"' % (key or 0), '"e-x"', "bare",
                                     '"' + "e" * 500 + '"', '"'))))
    if r.random() < 0.3:
        hs.append(("Last-Modified", r.choice(("Sat, 01 Jan 2000 00:00:00 GMT", "garbage",
                                              "Fri, 31 Dec 2099 23:59:59 GMT"))))
    if r.random() < 0.15:
        hs.append(("Vary", r.choice(("Accept-Encoding", "Cookie", "*", "Accept-Encoding, User-Agent",
                                     "", ",", ", ".join("X-V%d" % i for i in range(60)),
                                     "Accept-Encoding, Accept-Encoding"))))
    ctype = wchoice(r, [(30, "text/plain"), (20, "text/html"), (10, "application/javascript"),
                        (25, None), (5, "text/html; charset=utf-8"), (5, "garbage/"), (5, "")])
    if ctype is not None:
        hs.append(("Content-Type", ctype))
    if r.random() < 0.05:
        hs.append(("Age", r.choice(("5", "-1", "99999999999999999999", "x"))))
    if r.random() < 0.04:
        hs.append(("Content-Encoding", r.choice(("gzip", "br", "identity"))))
    if status == 206 or r.random() < 0.02:
        hs.append(("Content-Range", r.choice(("bytes 0-10/100", "bytes */100", "bytes x"))))
    if status in (301, 302, 307):
        hs.append(("Location", r.choice(("/fz/elsewhere", "http://[bad", ""))))
    if r.random() < 0.04:
        hs.append(("Via", "1.1 upstream"))
    if r.random() < 0.04:
        hs.append(("Cache-Status", "upstream; hit"))
    if r.random() < 0.02:
        hs.append(("Trailer", "X-Trailer"))
    if r.random() < 0.03:
        hs.append(("X-Big", filler(r, r.choice((4000, 9000, 17000, 40000, 70000,
                                                 200000))).decode().replace("\n", "a")))
    if r.random() < 0.015:
        hs += [("X-M%d" % i, "v") for i in range(r.choice((100, 400, 2000)))]

    # --- body and framing
    size = wchoice(r, [(12, 0), (33, r.randint(1, 100)), (33, r.randint(100, 4000)),
                       (15, r.randint(4000, 70000)), (5, r.randint(70000, 300000)),
                       (2, r.randint(300000, 700000))])
    body = filler(r, size)
    bodiless = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    if bodiless and r.random() < 0.8:
        body = b""          # usually honest; sometimes a body where none may be
    framing = wchoice(r, [(45, "length"), (22, "chunked"), (8, "close"), (4, "cl-short"),
                          (4, "cl-long"), (3, "cl-dup"), (2, "cl-conflict"), (2, "cl+te"),
                          (5, "bad-chunked"), (1, "te-gzip"), (2, "cl-bad"), (2, "none")])
    if method == "HEAD" and framing in ("length", "cl-short", "cl-long"):
        body_decl = size
    else:
        body_decl = len(body)
    conn_hdr = wchoice(r, [(70, None), (20, "close"), (6, "keep-alive"), (2, "close, x"),
                           (2, "Upgrade")])
    if conn_hdr:
        hs.append(("Connection", conn_hdr))
    body_parts = [body] if body else []
    well_framed = True
    if framing == "length":
        hs.append(("Content-Length", str(body_decl)))
    elif framing == "chunked":
        hs.append(("Transfer-Encoding", "chunked"))
        if not bodiless or body:
            body_parts = chunked(r, body, ext=r.random() < 0.1,
                                 trailers=[b"X-Trailer: 1"] if r.random() < 0.1 else ())
    elif framing == "close":
        well_framed = False
    elif framing == "cl-short":
        hs.append(("Content-Length", str(max(0, len(body) - r.randint(1, 50)))))
    elif framing == "cl-long":
        hs.append(("Content-Length", str(len(body) + r.choice((1, 10, 5000, 1 << 40)))))
        well_framed = False
    elif framing == "cl-dup":
        hs += [("Content-Length", str(len(body)))] * 2
    elif framing == "cl-conflict":
        hs += [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 7))]
        well_framed = False
    elif framing == "cl+te":
        hs += [("Content-Length", str(len(body) + 3)), ("Transfer-Encoding", "chunked")]
        body_parts = chunked(r, body)
        well_framed = False
    elif framing == "bad-chunked":
        hs.append(("Transfer-Encoding", "chunked"))
        body_parts = bad_chunked(r, body)
        well_framed = False
    elif framing == "te-gzip":
        hs.append(("Transfer-Encoding", "gzip"))
        well_framed = False
    elif framing == "cl-bad":
        hs.append(("Content-Length", r.choice(("-1", "0x10", "1 2", "+5", "abc", "",
                                               "99999999999999999999999"))))
        well_framed = False
    else:
        well_framed = bodiless

    # --- serialise the head
    eol = b"\r\n"
    lines = [_status_line(r, status, head_valid)]
    for k, v in hs:
        lines.append(("%s: %s" % (k, v)).encode("latin-1", "replace"))
    if not head_valid:
        x = r.random()
        if x < 0.25:
            eol = b"\n"
        elif x < 0.45:
            lines.insert(r.randint(1, len(lines)), b" obs-folded continuation")
        elif x < 0.6:
            lines.append(r.choice((b"X-Sp : v", b"NoColon", b": v", b"X-Nul: a\0b", b"\x01: x",
                                   b"X-Ctl: \x7f")))
        elif x < 0.7:
            lines.insert(1, b"")       # empty line early: head ends there
    head = pre + eol.join(lines) + eol + eol
    data = head + b"".join(body_parts)
    if r.random() < 0.07:
        data = mutate(r, data)
        well_framed = False

    # --- how it ends
    end = wchoice(r, [(55, "keep"), (30, "close"), (8, "rst"), (7, "truncate")])
    if conn_hdr and conn_hdr.startswith("close") and end == "keep":
        end = "close"
    if end == "keep" and not well_framed:
        # keep-alive after ambiguous framing would stall the proxy until
        # read_timeout; do it only sometimes
        if r.random() < 0.7:
            end = "close"
    if end == "truncate":
        cut = r.randrange(len(data)) if data else 0
        data = data[:cut]
        end = r.choice(("close", "rst"))
        plan.desc = "truncated at %d" % cut
    acts, how = _split_writes(r, data, len(head))
    plan.actions += acts
    if end == "keep" and r.random() < 0.03:
        plan.actions.append(("sleep", r.uniform(0.05, 0.3)))
        plan.actions.append(("close",))
    else:
        plan.actions.append((end,))
    plan.desc = "%s %d %s size=%d writes=%s end=%s %s" % (
        "valid" if head_valid else "bad-head", status, framing, len(body), how, end, plan.desc)
    return plan


def _pass_leave(r, plan, method):
    """Issue 18's sequence, origin side: an uncacheable response whose head,
    body and end arrive in one write (the client side leaves meanwhile)."""
    hs = list(r.choice(UNCACHEABLE))
    hs = [(k, v % r.randrange(100) if "%d" in v else v) for k, v in hs]
    body = filler(r, wchoice(r, [(40, r.randint(1, 100)), (50, r.randint(100, 3000)),
                                 (10, r.randint(3000, 12000))]))
    framing = r.choice(("length", "length", "chunked"))
    hs.append(("Content-Type", r.choice(("text/plain", "application/json", "text/html"))))
    if framing == "length":
        hs.append(("Content-Length", str(len(body))))
        parts = [body]
    else:
        hs.append(("Transfer-Encoding", "chunked"))
        parts = chunked(r, body, chunk_max=r.choice((100, 1000, 100000)))
    close = r.random() < 0.3
    if close:
        hs.append(("Connection", "close"))
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(("%s: %s\r\n" % kv).encode() for kv in hs) + b"\r\n"
    data = head + (b"" if method == "HEAD" else b"".join(parts))
    if r.random() < 0.15:
        plan.actions.append(("sleep", r.choice((0.002, 0.01, 0.03))))
    plan.actions.append(("send", data))          # ONE write: head, body and end
    plan.actions.append(("close",) if close else ("keep",))
    plan.desc = "pass-leave %s size=%d one write %s" % (framing, len(body),
                                                        "close" if close else "keep")
    return plan


# ---------------------------------------------------------------------------
# the operator (admin socket and signals, during the traffic)

POLICY_NAMES = ("assets", "swr", "html", "default")


def operator_action(seed, k):
    """The k-th operator action: ('admin', method, target, body bytes|None,
    leave) with leave 'no' | 'fin' | 'rst' (the caller leaves right after
    sending), or ('signal', name)."""
    r = rng(seed, "op", k)
    key = "/fz/%s/s/%d%s" % (seed, r.randrange(N_SHARED), wchoice(r, SUFFIXES))
    kind = wchoice(r, [(22, "purge-url"), (8, "purge-prefix"), (10, "purge-generation"),
                       (5, "generation"), (6, "stats"), (4, "metrics"), (10, "verify"),
                       (4, "reload"), (4, "sighup"), (2, "sigusr1"), (3, "bad-json")])
    leave = wchoice(r, [(80, "no"), (12, "fin"), (8, "rst")])
    if kind == "sighup":
        return ("signal", "SIGHUP")
    if kind == "sigusr1":
        return ("signal", "SIGUSR1")
    if kind == "purge-url":
        soft = r.random() < 0.3
        body = '{"url": "%s"%s}' % (key, ', "soft": true' if soft else "")
        return ("admin", "POST", "/purge", body.encode(), leave)
    if kind == "purge-prefix":
        body = '{"prefix": "%s"}' % r.choice(("/fz/%s/s/" % seed, "/fz/%s/" % seed, "/"))
        return ("admin", "POST", "/purge", body.encode(), leave)
    if kind == "purge-generation":
        body = r.choice(("", "{}", '{"policy": "%s"}' % r.choice(POLICY_NAMES)))
        return ("admin", "POST", "/purge/generation", body.encode(), leave)
    if kind == "generation":
        return ("admin", "GET", "/generation", None, leave)
    if kind == "stats":
        return ("admin", "GET", "/stats", None, leave)
    if kind == "metrics":
        return ("admin", "GET", "/metrics", None, leave)
    if kind == "verify":
        urls = ['"/fz/%s/s/%d%s"' % (seed, r.randrange(N_SHARED), wchoice(r, SUFFIXES))
                for _ in range(r.randint(1, 6))]
        return ("admin", "POST", "/verify", ('{"urls": [%s]}' % ", ".join(urls)).encode(), leave)
    if kind == "reload":
        return ("admin", "POST", "/reload", None, leave)
    body = r.choice((b"{", b"[]", b'{"url": 1}', b'{"url": "/a", "url": "/b"}', b"\xff\xfe",
                     b'{"urls": []}', b'{"url": "/a\\u0000b"}'))
    return ("admin", "POST", r.choice(("/purge", "/verify", "/purge/generation")), body, leave)


def config_variant(seed):
    """Settings other than the limits, drawn per seed so that several seeds
    cover both sides of each switch."""
    r = rng(seed, "cfg")
    return {
        "etag": wchoice(r, [(70, "content-hash"), (30, "origin")]),
        "coalesce": wchoice(r, [(75, "true"), (25, "false")]),
        "after_purge": wchoice(r, [(60, "refetch"), (40, "revalidate")]),
        "host_header": wchoice(r, [(70, "preserve"), (30, "origin")]),
    }


def live_response():
    body = b"alive\n"
    return (b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


LINGER0 = struct.pack("ii", 1, 0)
