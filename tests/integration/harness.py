"""harness.py — run freshcached in front of test-origin and talk HTTP to it.

Python 3 standard library only.  Used by every tests/integration/test_*.py.
H2Conn, the HTTP/2 client, needs python3-h2 (Debian's, for /usr/bin/python3)
and imports it only when used.

Environment (set by meson, see meson.build here):
  FRESHCACHED   path of the daemon under test
  TEST_ORIGIN   path of tests/origin's test-origin
  PROXYCTL      path of proxyctl (for the tests that use run_proxyctl)
Optional:
  FRESHCACHE_TEST_KEEP=1    keep the temporary directories (configs, logs)
  FRESHCACHE_TEST_DIRECT=1  harness self-check: do not start freshcached and
                            point the clients straight at the origin (tests
                            about caching then fail, by design)

A test class derives from ProxyTestCase; setUpClass starts one origin and one
freshcached for the class (config = default_config() deep-merged with the
class's `config` dict), every test uses its own cache keys (self.uniq()), and
class cleanups stop both processes (SIGTERM, then SIGKILL after 5 s) whatever
happens.  Origin request counts are reset before each test.
"""

import atexit
import functools
import http.client
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

FRESHCACHED = os.environ.get("FRESHCACHED")
TEST_ORIGIN = os.environ.get("TEST_ORIGIN")
PROXYCTL = os.environ.get("PROXYCTL")
if PROXYCTL:
    PROXYCTL = os.path.abspath(PROXYCTL)     # tests may run the daemon elsewhere
DIRECT = os.environ.get("FRESHCACHE_TEST_DIRECT") == "1"
KEEP = os.environ.get("FRESHCACHE_TEST_KEEP") == "1"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MiB = 1024 * 1024

# ---------------------------------------------------------------------------
# processes: every child is registered and killed at exit, whatever happens

_children = []
_tmpdirs = []          # removed on SIGTERM too (unless FRESHCACHE_TEST_KEEP)


def _kill_children():
    for p in list(_children):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_children)


def _on_sigterm(signum, frame):
    # meson sends SIGTERM on timeout: leave no servers behind
    _kill_children()
    if not KEEP:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
    sys.stderr.write("harness: terminated by signal %d\n" % signum)
    sys.stderr.flush()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


def _stop_process(p, timeout=5.0):
    """SIGTERM, then SIGKILL after `timeout`.  Returns the exit status and
    whether SIGKILL was needed."""
    killed = False
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            p.kill()
            p.wait(5)
    if p in _children:
        _children.remove(p)
    return p.returncode, killed


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with status %s before accepting connections"
                               % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not accept connections on port %d within %.0fs"
                                   % (what, port, timeout))
            time.sleep(0.02)


def _unix_accepts(path):
    """Does a Unix stream socket at `path` accept a connection?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------
# the deterministic bodies of /t/body (see tests/origin/test_origin.c)


@functools.lru_cache(maxsize=32)
def expected_body(size, seed="x"):
    tag = seed.encode()[:40]
    parts = []
    for k in range((size + 63) // 64):
        p = tag + b" %012d " % (k * 64)
        parts.append(p + bytes([97 + k % 26]) * (63 - len(p)) + b"\n")
    return b"".join(parts)[:size]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def origin_etag(body):
    """The strong ETag test-origin sends for `body` with etag=1."""
    return '"%016x"' % fnv1a64(body)


def url(path, **params):
    """url('/t/body', size=10, hdr=['A:1', 'B:2']) -> '/t/body?size=10&hdr=A:1&hdr=B:2'.
    The string is what the origin sees and counts, if the proxy forwards the
    request-target verbatim."""
    items = []
    for k, v in params.items():
        for one in (v if isinstance(v, (list, tuple)) else [v]):
            items.append("%s=%s" % (k, urllib.parse.quote(str(one), safe="/:,=*;")))
    return path + ("?" + "&".join(items) if items else "")


# ---------------------------------------------------------------------------
# Cache-Status (RFC 9211): a structured-field list of items with parameters


def _sf_split(s, sep):
    out, cur, inq, esc = [], [], False, False
    for ch in s:
        if inq:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                inq = False
        elif ch == '"':
            inq = True
            cur.append(ch)
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _sf_value(v):
    v = v.strip()
    if v.startswith('"') and v.endswith('"') and len(v) >= 2:
        return re.sub(r"\\(.)", r"\1", v[1:-1])
    if v == "?1":
        return True
    if v == "?0":
        return False
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    return v


def parse_cache_status_list(value):
    """'a; hit, freshcache; fwd=miss; stored' ->
    [{'cache': 'a', 'hit': True}, {'cache': 'freshcache', 'fwd': 'miss', 'stored': True}]"""
    members = []
    if not value:
        return members
    for member in _sf_split(value, ","):
        if not member.strip():
            continue
        parts = _sf_split(member, ";")
        d = {"cache": _sf_value(parts[0])}
        for p in parts[1:]:
            if not p.strip():
                continue
            if "=" in p:
                k, v = p.split("=", 1)
                d[k.strip()] = _sf_value(v)
            else:
                d[p.strip()] = True
        members.append(d)
    return members


def parse_cache_status(value, cache="freshcache"):
    """The (last) member for `cache` as a dict, {} when there is none."""
    for m in reversed(parse_cache_status_list(value)):
        if m.get("cache") == cache:
            return m
    return {}


# ---------------------------------------------------------------------------
# a raw HTTP/1.1 client: exact bytes, pipelining, HTTP/1.0, bad requests


class NoResponse(Exception):
    """The connection closed (or reset) before a status line arrived."""


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []           # [(name, value)] as received
        self.body = b""
        self.complete = False       # framing satisfied (False: truncated)
        self.framing = None         # 'length' | 'chunked' | 'close' | 'none'
        self.head_bytes = b""
        self.interim = []           # 1xx statuses seen before this one
        self.interim_headers = []   # and the fields of each, [(name, value)]
        self.elapsed = None

    def header(self, name):
        """All values of `name` joined with ', ' (None if absent)."""
        vals = self.headers_named(name)
        return ", ".join(vals) if vals else None

    def headers_named(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name):
        return bool(self.headers_named(name))

    def tokens(self, name):
        """Comma-separated tokens of a list header, lower-cased."""
        v = self.header(name) or ""
        return [t.strip().lower() for t in v.split(",") if t.strip()]

    @property
    def cache_status(self):
        return parse_cache_status(self.header("Cache-Status"))

    @property
    def age(self):
        v = self.header("Age")
        return int(v) if v is not None and v.strip().isdigit() else None

    def __repr__(self):
        return "<Response %s %s %s, %d body bytes%s, headers=%r>" % (
            self.version, self.status, self.reason, len(self.body),
            "" if self.complete else " (INCOMPLETE)", self.headers)


def build_request(method, target, headers=None, body=None, version="HTTP/1.1",
                  host="127.0.0.1"):
    """Bytes of a request.  `headers`: dict or list of pairs; a Host header is
    added unless given (pass host=None for none) and Content-Length for a
    body unless Content-Length or Transfer-Encoding is given."""
    hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hs}
    if "host" not in names and host is not None:
        hs.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hs) + "\r\n"
    return head.encode("latin-1") + (body or b"")


class RawConn:
    def __init__(self, port, timeout=10.0, source=None):
        """source: a local address to connect from (another 127.x address
        makes another client)."""
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", **kw):
        self.send(build_request(method, target, headers, body, version,
                                host=kw.pop("host", "127.0.0.1:%d" % self.port)))
        return self.read_response(method, **kw)

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if not self._fill():
                return None

    def _readn(self, n):
        while len(self.buf) < n:
            if not self._fill():
                break
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, method="GET", timeout=None):
        """Read one response.  A body cut short by the connection closing gives
        complete=False rather than an exception; no status line at all raises
        NoResponse; the server neither finishing nor closing within the socket
        timeout fails the test (AssertionError) saying how far it got."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        resp = Response()
        t0 = time.monotonic()
        try:
            return self._read_response(resp, method, t0)
        except socket.timeout:
            if resp.status is None:
                got = "no status line"
            else:
                got = "%s %s, headers %r, %d body bytes (%s framing)" % (
                    resp.version, resp.status, resp.headers, len(resp.body) or len(self.buf),
                    resp.framing)
            raise AssertionError("response to %s: neither complete nor closed after %.1fs; got %s"
                                 % (method, time.monotonic() - t0, got)) from None

    def _read_response(self, resp, method, t0):
        while True:
            line = self._readline()
            if line is None:
                raise NoResponse("connection closed before a status line%s"
                                 % (" (reset)" if self.reset else ""))
            if line in (b"\r\n", b"\n") and not resp.interim and resp.status is None:
                continue    # tolerate a stray CRLF between messages
            head = [line]
            m = re.match(rb"(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", line)
            if not m:
                raise AssertionError("bad status line %r" % line)
            resp.version = m.group(1).decode()
            resp.status = int(m.group(2))
            resp.reason = (m.group(3) or b"").decode("latin-1")
            resp.headers = []
            while True:
                h = self._readline()
                if h is None:
                    resp.head_bytes = b"".join(head)
                    resp.complete = False
                    return resp
                head.append(h)
                if h in (b"\r\n", b"\n"):
                    break
                if h[:1] in (b" ", b"\t"):
                    raise AssertionError("obsolete line folding in response: %r" % h)
                k, _, v = h.decode("latin-1").partition(":")
                resp.headers.append((k.strip(), v.strip()))
            resp.head_bytes = b"".join(head)
            if 100 <= resp.status < 200 and resp.status != 101:
                resp.interim.append(resp.status)
                resp.interim_headers.append(resp.headers)
                continue
            break
        self._read_body(resp, method)
        resp.elapsed = time.monotonic() - t0
        return resp

    def _read_body(self, resp, method):
        te = [t.strip().lower() for t in (resp.header("Transfer-Encoding") or "").split(",") if t.strip()]
        if method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            resp.framing, resp.complete = "none", True
        elif te:
            if te[-1] != "chunked":
                raise AssertionError("response with Transfer-Encoding %r not ending in chunked" % te)
            resp.framing = "chunked"
            body = bytearray()
            while True:
                line = self._readline()
                if line is None:
                    break
                size_s = line.split(b";")[0].strip()
                if not re.fullmatch(rb"[0-9a-fA-F]+", size_s):
                    raise AssertionError("bad chunk-size line %r" % line)
                size = int(size_s, 16)
                if size == 0:
                    while True:     # trailer section
                        t = self._readline()
                        if t is None or t in (b"\r\n", b"\n"):
                            break
                    resp.complete = t is not None
                    break
                data = self._readn(size)
                body += data
                if len(data) < size:
                    break
                crlf = self._readline()
                if crlf is None:
                    break
                if crlf not in (b"\r\n", b"\n"):
                    raise AssertionError("chunk data not followed by CRLF: %r" % crlf[:40])
            resp.body = bytes(body)
        elif resp.has("Content-Length"):
            vals = {v.strip() for v in (resp.header("Content-Length") or "").split(",")}
            if len(vals) != 1 or not next(iter(vals)).isdigit():
                raise AssertionError("bad Content-Length %r" % resp.header("Content-Length"))
            n = int(vals.pop())
            resp.framing = "length"
            resp.body = self._readn(n)
            resp.complete = len(resp.body) == n
        else:
            resp.framing = "close"
            while self._fill():
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
            resp.complete = not self.reset

    def wait_closed(self, timeout):
        """True if the peer closes (FIN or RST) within `timeout` seconds; data
        arriving meanwhile is kept in self.buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                return False
        return True


def request(port, method="GET", target="/", headers=None, body=None, version="HTTP/1.1",
            timeout=10.0):
    """One request on a fresh connection; the connection is closed after."""
    with RawConn(port, timeout) as c:
        return c.request(method, target, headers, body, version)


def parallel(n, fn, timeout=60):
    """Run fn(i, barrier) in n threads; returns the list of results (an
    exception raised by a thread is re-raised here)."""
    barrier = threading.Barrier(n, timeout=timeout)
    results = [None] * n
    errors = []

    def run(i):
        try:
            results[i] = fn(i, barrier)
        except BaseException as e:     # noqa: B902 — reported below
            errors.append((i, e))
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if any(t.is_alive() for t in threads):
        raise AssertionError("parallel clients still running after %ss" % timeout)
    if errors:
        i, e = errors[0]
        raise AssertionError("client %d of %d failed: %r" % (i, n, e)) from e
    return results


# ---------------------------------------------------------------------------
# an HTTP/2 client on python3-h2: the same request() -> Response as RawConn
#
# python3-h2 is Debian's package: it is installed for /usr/bin/python3, so
# the tests that use H2Conn run under that interpreter (meson.build says
# so).  This module itself stays standard library only: h2 is imported when
# the first H2Conn is made.


def h2_available():
    """True if python3-h2 can be imported by this interpreter."""
    try:
        import h2.connection  # noqa: F401
        return True
    except ImportError:
        return False


def make_cert(directory, name="localhost", curve="prime256v1"):
    """A self-signed ECDSA certificate for `name` and 127.0.0.1, made now
    with the openssl CLI (nothing checked in can expire).  Returns
    (certificate path, key path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:" + curve, "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=" + name,
                        "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % name],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % p.stderr)
    return cert, key


def send_in_background(sock, data):
    """sendall(data) on a thread (more than the socket buffers hold: the
    peer stops reading at some point, which ends it with an OSError);
    the started thread, to join."""
    def send():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True)
    t.start()
    return t


def read_until_fin(testcase, sock, lost):
    """Every byte until the peer's FIN; a reset fails `testcase`, naming
    what it can destroy (`lost`)."""
    got = b""
    while True:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            testcase.fail("reset after %d bytes: %s" % (len(got), lost))
        if not d:
            return got
        got += d


def tls_client(sock, alpn=("h2", "http/1.1"), server_name="localhost"):
    """Wrap a connected socket in TLS, no certificate check (the test's own
    certificate), offering `alpn`."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx.wrap_socket(sock, server_hostname=server_name)


class H2Conn:
    """One HTTP/2 connection (cleartext with prior knowledge, or TLS with
    ALPN h2), several streams at once.

    request() is RawConn.request(): one stream, its Response.  For several
    at once: send_request() for each, then response(stream_id).  A Response
    here has version "HTTP/2", framing "h2", `complete` only when the
    stream ended with END_STREAM, `reset` the RST_STREAM error code (None
    if none) and `stream_id`.  `goaway` is (error code, last stream id)
    once a GOAWAY arrived; `eof` once the server closed.

    `settings` are sent with the preface (e.g. a small
    INITIAL_WINDOW_SIZE); with auto_ack=False received DATA is not
    acknowledged (no WINDOW_UPDATE), so a test plays a slow reader with
    ack(). `h2` and `sock` are there for tests that send what a client
    should not."""

    def __init__(self, port, timeout=10.0, tls=False, settings=None, auto_ack=True,
                 server_name="localhost", conn_window=None):
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
        import h2.settings
        self._ev = h2.events
        self._exc = h2.exceptions
        self._conn_state = h2.connection.ConnectionState
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self.auto_ack = auto_ack
        self.corked = False         # send_requests(): frames held for one write
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = tls_client(sock, ("h2",), server_name)
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise AssertionError("ALPN chose %r, not h2" % sock.selected_alpn_protocol())
        self.sock = sock
        self.h2 = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        if conn_window:
            self.h2.increment_flow_control_window(conn_window)
        self.streams = {}           # stream id -> Response
        self.events = []            # every h2 event, in order
        self.goaway = None          # (error code, last stream id)
        self.eof = False
        self.remote_settings = {}
        self.unacked = 0            # DATA bytes not acknowledged (auto_ack=False)
        self.flush()

    # -- plumbing --------------------------------------------------------------

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self):
        if self.corked:
            return
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                self.eof = True

    def send_raw(self, data):
        """Bytes straight onto the connection (frames made by hand)."""
        self.sock.sendall(data)

    def pump(self, timeout=None):
        """Read once (waiting up to `timeout`, default the connection's) and
        handle what arrived.  False on EOF or timeout."""
        if self.eof:
            return False
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(1 << 18)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, OSError):
            data = b""
        if not data:
            self.eof = True
            for r in self.streams.values():
                r.open = False
            return False
        self.receive(data)
        return True

    def receive(self, data):
        try:
            events = self.h2.receive_data(data)
        except self._exc.ProtocolError as e:
            raise AssertionError("HTTP/2 protocol error from the server: %r" % e) from None
        for ev in events:
            self._event(ev)
        self.flush()

    def _event(self, ev):
        E = self._ev
        self.events.append(ev)
        r = self.streams.get(getattr(ev, "stream_id", None) or 0)
        if r is None and isinstance(ev, (E.InformationalResponseReceived, E.ResponseReceived,
                                         E.TrailersReceived, E.StreamEnded)):
            raise AssertionError("HTTP/2: %r on a stream this client never opened" % ev)
        if isinstance(ev, E.InformationalResponseReceived):
            r.interim.append(int(dict(ev.headers)[b":status"]))
            r.interim_headers.append([(k.decode("latin-1"), v.decode("latin-1"))
                                      for k, v in ev.headers if not k.startswith(b":")])
        elif isinstance(ev, E.ResponseReceived):
            r.headers = []
            for k, v in ev.headers:
                k, v = k.decode("latin-1"), v.decode("latin-1")
                if k == ":status":
                    r.status = int(v)
                else:
                    r.headers.append((k, v))
            r.head_at = time.monotonic()
        elif isinstance(ev, E.TrailersReceived):
            r.trailers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in ev.headers]
        elif isinstance(ev, E.DataReceived):
            if r is not None:
                r.chunks.append(ev.data)
                r.received += len(ev.data)
            if self.auto_ack:
                if ev.flow_controlled_length:
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                self.unacked += ev.flow_controlled_length
                if r is not None:
                    r.unacked += ev.flow_controlled_length
        elif isinstance(ev, E.StreamEnded):
            r.complete = True
            r.open = False
        elif isinstance(ev, E.StreamReset):
            if r is not None:
                r.reset = ev.error_code
                r.open = False
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)
            self.goaway_data = ev.additional_data
            # h2 stops at the first GOAWAY, but RFC 9113 §6.8 lets the
            # streams up to last_stream_id finish: keep reading them.
            self.h2.state_machine.state = self._conn_state.CLIENT_OPEN
        elif isinstance(ev, E.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value

    def ack(self, stream_id, n):
        """WINDOW_UPDATE for `n` bytes of stream `stream_id` (and the
        connection): the slow reader reads."""
        self.h2.acknowledge_received_data(n, stream_id)
        r = self.streams.get(stream_id)
        if r is not None:
            r.unacked -= n
        self.unacked -= n
        self.flush()

    # -- requests --------------------------------------------------------------

    def send_request(self, method, target, headers=None, body=None, host=None,
                     end_stream=True, stream_id=None, pseudo=None):
        """Open a stream: HEADERS (and the body, within flow control).
        `headers` as for RawConn; Host becomes :authority; `pseudo`
        replaces the pseudo-header fields (e.g. for CONNECT).  Returns the
        stream id."""
        hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        authority = host or "127.0.0.1:%d" % self.port
        fields = []
        for k, v in hs:
            if k.lower() == "host":
                authority = v
            else:
                fields.append((k.lower(), str(v)))
        if body is not None and "content-length" not in {k for k, _ in fields}:
            fields.append(("content-length", str(len(body))))
        if pseudo is None:
            pseudo = [(":method", method), (":scheme", "https" if self.tls else "http"),
                      (":authority", authority), (":path", target)]
        sid = stream_id or self.h2.get_next_available_stream_id()
        r = Response()
        r.version = "HTTP/2"
        r.reason = ""
        r.framing = "h2"
        r.stream_id = sid
        r.method = method
        r.reset = None
        r.trailers = []
        r.chunks = []
        r.received = 0
        r.unacked = 0
        r.open = True
        r.sent_at = time.monotonic()
        r.head_at = None
        self.streams[sid] = r
        self.h2.send_headers(sid, pseudo + fields, end_stream=end_stream and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end_stream)
        return sid

    def send_requests(self, method, targets, headers=None):
        """Open a stream for each of `targets`, their HEADERS in one write,
        so that the server reads them together (one pass of its loop).
        Returns the stream ids."""
        self.corked = True
        try:
            sids = [self.send_request(method, t, headers) for t in targets]
        finally:
            self.corked = False
        self.flush()
        return sids

    def send_body(self, sid, body, end_stream=True):
        """DATA frames for `body`, as the windows allow (waits for
        WINDOW_UPDATEs)."""
        view = memoryview(body)
        deadline = time.monotonic() + self.timeout
        while view:
            r = self.streams[sid]
            if not r.open:
                return      # reset or answered early: stop uploading
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                       len(view))
            if room <= 0:
                if not self.pump(max(0.0, deadline - time.monotonic())):
                    if self.eof or time.monotonic() > deadline:
                        raise AssertionError("upload stalled: no WINDOW_UPDATE for %.0fs, "
                                             "%d bytes left" % (self.timeout, len(view)))
                continue
            self.h2.send_data(sid, bytes(view[:room]), end_stream=end_stream and room == len(view))
            view = view[room:]
            self.flush()
            deadline = time.monotonic() + self.timeout
        if not body and end_stream:
            self.h2.end_stream(sid)
            self.flush()

    def reset_stream(self, sid, code=8):
        """RST_STREAM (default CANCEL)."""
        self.h2.reset_stream(sid, code)
        self.streams[sid].open = False
        self.flush()

    def response(self, sid, timeout=None):
        """Wait for stream `sid` to end (END_STREAM or RST_STREAM) or the
        connection to close; its Response.  A stream neither finished nor
        reset within the timeout fails the test, saying how far it got."""
        r = self.streams[sid]
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        while r.open and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    "stream %d (%s): neither complete nor reset after %.1fs; status %s, "
                    "%d body bytes, goaway %r" % (sid, r.method, t, r.status, r.received,
                                                  self.goaway))
            self.pump(left)
        r.body = b"".join(r.chunks)
        r.elapsed = time.monotonic() - r.sent_at
        if r.status is None and not r.complete:
            raise NoResponse("stream %d: no response (reset %s, goaway %r, eof %s)"
                             % (sid, r.reset, self.goaway, self.eof))
        return r

    def request(self, method, target, headers=None, body=None, version=None, timeout=None,
                host=None):
        """RawConn.request() over one new stream (`version` is ignored)."""
        sid = self.send_request(method, target, headers, body, host)
        return self.response(sid, timeout)

    def read_all(self, sids, timeout=None):
        """The Responses of several streams (in the order given)."""
        return [self.response(sid, timeout) for sid in sids]

    def wait(self, predicate, timeout=5.0):
        """Pump until predicate() is true; its value, or None at the timeout
        or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.pump(left)

    def wait_closed(self, timeout):
        """True if the server closes within `timeout` (what arrives meanwhile
        is handled)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(left)
        return True

    def ping(self, data=b"12345678"):
        self.h2.ping(data)
        self.flush()


def h2_request(port, method="GET", target="/", headers=None, body=None, timeout=10.0, tls=False):
    """One request on a fresh HTTP/2 connection, closed after."""
    with H2Conn(port, timeout, tls=tls) as c:
        return c.request(method, target, headers, body)


# ---------------------------------------------------------------------------
# the origin


class Origin:
    def __init__(self, tmpdir, root=None, port=0):
        if not TEST_ORIGIN or not os.path.exists(TEST_ORIGIN):
            raise RuntimeError("TEST_ORIGIN is not set to the test-origin executable "
                               "(run through `meson test`, or export TEST_ORIGIN=...)")
        self.log_path = os.path.join(tmpdir, "origin.log")
        args = [TEST_ORIGIN, "--listen", "127.0.0.1:%d" % port]
        if root:
            args += ["--root", root]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.logf,
                                     stdin=subprocess.DEVNULL)
        _children.append(self.proc)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + 5
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or not sel.select(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise RuntimeError("test-origin did not print its port: %s" % _tail(self.log_path))
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                self.stop()
                raise RuntimeError("test-origin exited: %s" % _tail(self.log_path))
            line += chunk
        sel.close()
        m = re.fullmatch(rb"listening 127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.stop()
            raise RuntimeError("unexpected first line from test-origin: %r" % line)
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        rc, killed = _stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.logf.close()
        if rc != 0 or killed:
            sys.stderr.write("note: test-origin exited with status %s%s\n%s\n" % (
                rc, " (killed)" if killed else "", _tail(self.log_path)))
        return rc

    def _call(self, method, target, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, target, body=body)
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError("origin %s %s: %d %r" % (method, target, r.status, data))
            return json.loads(data)
        finally:
            c.close()

    def stats(self):
        return self._call("GET", "/__stats")

    def count(self, target):
        """Requests (any method) the origin received for exactly `target`."""
        return self.stats()["requests"].get(target, 0)

    def count_method(self, method, target):
        return self.stats()["methods"].get("%s %s" % (method, target), 0)

    def total(self):
        return self.stats()["total"]

    def log(self, target=None):
        """Logged requests, oldest first, optionally only those for `target`;
        each {'method', 'uri', 'version', 'headers': [[k, v]], 'body_length'}."""
        reqs = self._call("GET", "/__log")["requests"]
        return [r for r in reqs if target is None or r["uri"] == target]

    def reset(self):
        self._call("POST", "/__reset")

    def set(self, key, value=None, status=None):
        params = {"key": key}
        if value is not None:
            params["value"] = value
        if status is not None:
            params["status"] = status
        return self._call("POST", url("/__set", **params))


def req_header(logged, name):
    """Value of header `name` in a /__log entry (joined with ', '), or None."""
    vals = [v for k, v in logged["headers"] if k.lower() == name.lower()]
    return ", ".join(vals) if vals else None


# ---------------------------------------------------------------------------
# config and the daemon


def default_config(port, origin_url, tmpdir):
    return {
        "listen": [{"address": "127.0.0.1:%d" % port}],
        "workers": 2,
        "origin": {"url": origin_url, "connect_timeout": "1s", "read_timeout": "2s"},
        "cache": {"memory": "64MiB", "max_object_size": "16MiB"},
        "admin": {"socket": os.path.join(tmpdir, "admin.sock")},
        "state_dir": os.path.join(tmpdir, "state"),
        "log": {"access": "off", "level": "warn"},
        "policies": [{"name": "default", "ttl": "origin"}],
    }


def deep_merge(base, over):
    """A copy of `base` with `over` merged in; a None value deletes the key;
    lists are replaced, not merged."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


_PLAIN = re.compile(r"[A-Za-z0-9_./@+-][A-Za-z0-9_./:@+-]*")
_YAML_SPECIAL = {"", "~", "null", "true", "false", "yes", "no", "on", "y", "n"}


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    # keep words like "off" and "origin" plain, as in the documentation
    if (_PLAIN.fullmatch(s) and not s.endswith(":") and not re.fullmatch(r"[-+.0-9]+", s)
            and (s.lower() not in _YAML_SPECIAL or s == "off")):
        return s
    return json.dumps(s)       # a JSON string is a YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts / lists / scalars (enough for configs)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, k))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = to_yaml(item, indent + 2).split("\n")
                lines.append("%s- %s" % (pad, sub[0][indent + 2:]))
                lines.extend(sub[1:])
            elif isinstance(item, list) and item:
                lines.append("%s-" % pad)
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(item)))
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


class Proxy:
    def __init__(self, config, tmpdir):
        if not FRESHCACHED or not os.path.exists(FRESHCACHED):
            raise RuntimeError("FRESHCACHED is not set to the freshcached executable "
                               "(run through `meson test`, or export FRESHCACHED=...)")
        self.config = config
        self.tmpdir = tmpdir
        self.port = int(config["listen"][0]["address"].rsplit(":", 1)[1])
        self.config_path = os.path.join(tmpdir, "freshcache.yaml")
        self.log_path = os.path.join(tmpdir, "freshcached.log")
        if config.get("state_dir"):
            os.makedirs(config["state_dir"], exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(to_yaml(config) + "\n")
        self.exit_status = None
        self.start()

    def start(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([FRESHCACHED, "-c", self.config_path], stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        _children.append(self.proc)
        try:
            wait_port(self.port, 5.0, self.proc, "freshcached")
            # The admin socket comes up right after the listeners: wait for
            # it too, so no test races it.  Until it accepts, not just
            # exists: bind() makes the file before listen() (a window that
            # is wide under ASan).
            sock = self.config.get("admin", {}).get("socket")
            deadline = time.monotonic() + 5.0
            while sock and not _unix_accepts(sock) and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("freshcached exited with %s" % self.proc.returncode)
                time.sleep(0.01)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError("%s\n--- config ---\n%s\n--- freshcached output ---\n%s"
                               % (e, to_yaml(self.config), _tail(self.log_path)))

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=40):
        return _tail(self.log_path, n)

    def stop(self, timeout=5.0):
        """SIGTERM, SIGKILL after `timeout`; returns the exit status."""
        rc, killed = _stop_process(self.proc, timeout)
        self.logf.close()
        self.exit_status = rc
        if killed:
            sys.stderr.write("note: freshcached ignored SIGTERM for %.0fs and was killed\n" % timeout)
        elif rc != 0:
            sys.stderr.write("note: freshcached exited with status %s after SIGTERM\n" % rc)
        return rc

    def admin_raw(self, method, path, data=None, headers=()):
        """One request on the admin socket (Connection: close); returns the
        response's head and body as bytes."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.config["admin"]["socket"])
        hs = [("Host", "localhost"), ("Connection", "close")] + list(headers)
        if data is None and method in ("POST", "PUT"):
            data = b""
        s.sendall(build_request(method, path, hs, data, host=None))
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.close()
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def admin(self, method, path, body=None):
        """Call the admin API on the Unix socket; returns (status, parsed JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        head, rest = self.admin_raw(method, path, data,
                                    [("Content-Type", "application/json")] if data else [])
        status = int(head.split(b" ")[1])
        try:
            return status, json.loads(rest)
        except ValueError:
            return status, rest.decode("utf-8", "replace")


def run_proxyctl(testcase, sock, *args, expect=0):
    """`proxyctl -s SOCK ARGS...`; fails `testcase` unless it exits with
    `expect` (None: any status).  Returns the CompletedProcess (text)."""
    p = subprocess.run([PROXYCTL, "-s", sock] + list(args), capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if expect is not None:
        testcase.assertEqual(p.returncode, expect, "proxyctl %s: exit %d, expected %d\n"
                             "stdout: %r\nstderr: %r" % (" ".join(args), p.returncode, expect,
                                                         p.stdout, p.stderr))
    return p


# ---------------------------------------------------------------------------
# the base test case


class ProxyTestCase(unittest.TestCase):
    config = {}             # deep-merged over default_config()
    origin_root = None      # --root for the origin
    origin_down = False     # point freshcached at a closed port instead
    origin_port = None      # or at this port (a test's own raw origin), set before setUpClass
    listen_options = {}     # merged into the first listener (e.g. {"http2": True})

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fc-it-")
        _tmpdirs.append(cls.tmp)
        cls.addClassCleanup(cls._remove_tmp)
        cls.origin = Origin(cls.tmp, root=cls.origin_root)
        cls.addClassCleanup(cls.origin.stop)
        cls.proxy = None
        if DIRECT:
            cls.port = cls.origin.port
            return
        port = cls.origin.port
        if cls.origin_down:
            port = free_port()
        elif cls.origin_port:
            port = cls.origin_port
        origin_url = "http://127.0.0.1:%d" % port
        for attempt in range(2):    # a free port can be taken before the daemon binds it
            cfg = deep_merge(default_config(free_port(), origin_url, cls.tmp), cls.config)
            if cls.listen_options:
                cfg["listen"] = [dict(cfg["listen"][0], **cls.listen_options)] + cfg["listen"][1:]
            try:
                cls.proxy = Proxy(cfg, cls.tmp)
                break
            except RuntimeError:
                if attempt == 1 or "Address already in use" not in _tail(
                        os.path.join(cls.tmp, "freshcached.log"), 5):
                    raise
        cls.addClassCleanup(cls._stop_proxy)
        cls.port = cls.proxy.port

    @classmethod
    def _stop_proxy(cls):
        if cls.proxy.alive():
            cls.proxy.stop()
        tail = cls.proxy.log_tail()
        if tail.strip():
            sys.stderr.write("--- freshcached output (%s) ---\n%s\n" % (cls.__name__, tail))

    @classmethod
    def _remove_tmp(cls):
        if KEEP:
            sys.stderr.write("kept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self._uniq = 0
        self.origin.reset()

    def tearDown(self):
        if self.proxy is not None and not self.proxy.alive():
            self.fail("freshcached died (status %s); output:\n%s"
                      % (self.proxy.proc.returncode, self.proxy.log_tail()))

    # -- helpers ------------------------------------------------------------

    def uniq(self):
        """A fresh seed: no two tests (or calls) share cache keys."""
        self._uniq += 1
        return "%s-%d-%04x" % (self._testMethodName[5:25], self._uniq, random.getrandbits(16))

    def get(self, target, headers=None, method="GET", body=None, version="HTTP/1.1", timeout=10.0):
        return request(self.port, method, target, headers, body, version, timeout)

    def conn(self, timeout=10.0):
        return RawConn(self.port, timeout)

    def assertBody(self, resp, expected, msg=None):
        """Byte-exact comparison without dumping megabytes on failure."""
        if resp.body == expected:
            return
        b = resp.body
        i = next((k for k in range(min(len(b), len(expected))) if b[k] != expected[k]),
                 min(len(b), len(expected)))
        self.fail("%sbody differs: got %d bytes, expected %d; first difference at byte %d: "
                  "got %r, expected %r" % (msg + ": " if msg else "", len(b), len(expected), i,
                                           b[i:i + 40], expected[i:i + 40]))

    def assertOk(self, resp, expected_body=None):
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.complete, resp)
        if expected_body is not None:
            self.assertBody(resp, expected_body)

    def assertHit(self, resp):
        cs = resp.cache_status
        self.assertTrue(cs.get("hit"), "expected a cache hit, Cache-Status: %r"
                        % resp.header("Cache-Status"))

    def assertNotHit(self, resp):
        cs = resp.cache_status
        self.assertFalse(cs.get("hit"), "expected no cache hit, Cache-Status: %r"
                         % resp.header("Cache-Status"))
        self.assertIn("fwd", cs, "Cache-Status lacks fwd=: %r" % resp.header("Cache-Status"))

    def proxyctl(self, *args, expect=0):
        """proxyctl on this class's daemon (run_proxyctl)."""
        return run_proxyctl(self, self.proxy.config["admin"]["socket"], *args, expect=expect)

    def admin_json(self, method, path, body=None):
        """An admin API call that must answer 200; its JSON."""
        status, doc = self.proxy.admin(method, path, body)
        self.assertEqual(status, 200, "%s %s: %s %r" % (method, path, status, doc))
        return doc

    def assertOriginCount(self, target, n):
        got = self.origin.count(target)
        self.assertEqual(got, n, "origin requests for %s: %d, expected %d" % (target, got, n))


def main():
    unittest.main(verbosity=2)
