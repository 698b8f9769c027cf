#!/usr/bin/env python3
"""TLS on both sides (issue 10).

Every certificate is made at test time with the openssl CLI (PKI below): a
test CA (ECDSA P-256), ECDSA and RSA leaf certificates for the listeners,
one with a wildcard name, an origin server certificate, a client
certificate for mutual TLS, and a second CA nobody trusts.  Nothing
checked in can expire.

Listeners (clients: curl, `openssl s_client`, Python's ssl):
- TLS 1.0 and 1.1 are refused by the server (the client offers them with
  `@SECLEVEL=0`, so the refusal seen is the daemon's alert), 1.2 and 1.3
  work; `tls.protocols` limits the versions and `tls.ciphers` the TLS 1.2
  suites; by default no suite without forward secrecy or without AEAD.
- SNI chooses the certificate (ECDSA, RSA, a wildcard name); an unknown
  name or no SNI gets the first one; ALPN chooses h2 first, then
  http/1.1, and no protocol in common is HTTP/1.1; no renegotiation.
- Sessions resume by ticket on either worker, and after a reload.
- SIGHUP swaps the certificate for new connections while an open
  keep-alive connection goes on with the old one; a key that does not
  match is refused and the old certificate keeps serving.
- Defence: 60 silent connections do not stop a real client and are closed
  after limits.handshake_timeout; a stalled handshake too; handshakes
  count against max_connections; garbage on the TLS port is closed at
  once, plain HTTP gets a plain 400 saying so (as from nginx); the daemon survives all of it; failures are counted
  in /metrics.
- /metrics has each certificate's expiry; one expiring within 14 days is
  a warning at start.
- `-t` reports an unreadable file, a key that does not match and a file
  that is not PEM at FILE:LINE:COLUMN, and a start says the same.
- X-Forwarded-Proto: https reaches the origin for TLS clients (HTTP/1.1
  and HTTP/2), and the HTTP and HTTPS listeners share one cache.

Origins over HTTPS (TLSOrigin below: Python's ssl and http.server, which
sees SNI, client certificates and resumed sessions):
- an unknown CA or a wrong name is a 502 with a log line that says why;
- the right CA and name: 200, stored (the next request is a HIT);
- server_name sets SNI and the name verified;
- verify: false works and is a warning at start and at every reload;
- mutual TLS with origin.tls.certificate/key; without them, a 502;
- reconnecting resumes the origin session.

Needs FRESHCACHED, TEST_ORIGIN and PROXYCTL (see harness.py), openssl and
curl."""

import hashlib
import http.server
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expected_body, url  # noqa: E402

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")

HANDSHAKE_TIMEOUT = 1.0     # limits.handshake_timeout in these tests


def need_programs():
    if H.DIRECT:
        raise unittest.SkipTest("needs freshcached (FRESHCACHE_TEST_DIRECT=1)")
    missing = [n for n, p in (("openssl", OPENSSL), ("curl", CURL)) if not p]
    if missing:
        raise RuntimeError("test_tls.py needs %s in PATH" % " and ".join(missing))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def run(argv, data=None, timeout=20):
    """Run a program; CompletedProcess with stdout and stderr as text."""
    p = subprocess.run(argv, input=data if data is not None else b"", capture_output=True,
                       timeout=timeout)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


# ---------------------------------------------------------------------------
# certificates, made with the openssl CLI


class Cert:
    def __init__(self, base, names):
        self.cert = base + ".pem"
        self.key = base + ".key"
        self.names = names
        with open(self.cert) as f:
            self.pem = f.read()
        self.der = ssl.PEM_cert_to_DER_cert(self.pem)
        p = run([OPENSSL, "x509", "-in", self.cert, "-noout", "-enddate"])
        m = re.fullmatch(r"notAfter=(.+)\n", p.out)
        assert m, p.out + p.err
        self.not_after = int(ssl.cert_time_to_seconds(m.group(1)))


class PKI:
    """A test CA and the certificates the tests use, in directory `d`."""

    def __init__(self, d):
        self.d = d
        self.ca = self.make_ca("ca", "freshcache test CA")
        self.other_ca = self.make_ca("other-ca", "a CA nobody trusts")
        # the listener's certificates, the first is the default
        self.ecdsa = self.leaf("ecdsa", ["default.test"])
        self.rsa = self.leaf("rsa", ["rsa.test"], kind="rsa")
        self.wild = self.leaf("wild", ["*.wild.test"], days=5)     # warned: < 14 days
        self.other = self.leaf("other", ["other.test"])
        # origins
        self.origin = self.leaf("origin", ["localhost", "origin.test"])
        self.stranger = self.leaf("stranger", ["localhost", "origin.test"], ca=self.other_ca)
        self.client = self.leaf("client", [], cn="freshcache client", usage="clientAuth")

    def openssl(self, *args):
        p = run([OPENSSL] + list(args))
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (" ".join(args), p.err))
        return p

    def key(self, path, kind):
        if kind == "rsa":
            self.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                         "-out", path)
        else:
            self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                         "-out", path)

    def make_ca(self, name, cn):
        base = os.path.join(self.d, name)
        self.key(base + ".key", "ec")
        self.openssl("req", "-x509", "-new", "-key", base + ".key", "-subj", "/CN=" + cn,
                     "-days", "30", "-sha256",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-out", base + ".pem")
        return Cert(base, [])

    def leaf(self, name, dns, kind="ec", days=30, ca=None, cn=None, usage="serverAuth"):
        """A certificate for DNS names `dns` signed by `ca` (the test CA)."""
        ca = ca or self.ca
        base = os.path.join(self.d, name)
        self.key(base + ".key", kind)
        ext = ["basicConstraints=critical,CA:FALSE",
               "keyUsage=critical,digitalSignature" + (",keyEncipherment" if kind == "rsa" else ""),
               "extendedKeyUsage=" + usage]
        if dns:
            ext.append("subjectAltName=" + ",".join("DNS:" + n for n in dns))
        write(base + ".ext", "\n".join(ext) + "\n")
        self.openssl("req", "-new", "-key", base + ".key", "-subj", "/CN=" + (cn or dns[0]),
                     "-out", base + ".csr")
        self.openssl("x509", "-req", "-in", base + ".csr", "-CA", ca.cert, "-CAkey", ca.key,
                     "-set_serial", "0x%x" % int.from_bytes(os.urandom(8), "big"),
                     "-days", str(days), "-sha256", "-extfile", base + ".ext",
                     "-out", base + ".pem")
        return Cert(base, dns)


pki = None


def setUpModule():
    global pki
    need_programs()
    d = tempfile.mkdtemp(prefix="fc-tls-pki-")
    H._tmpdirs.append(d)
    if H.KEEP:
        sys.stderr.write("kept %s\n" % d)
    else:
        unittest.addModuleCleanup(shutil.rmtree, d, ignore_errors=True)
    pki = PKI(d)


# ---------------------------------------------------------------------------
# TLS clients: openssl s_client, curl, Python's ssl


def s_client(port, *args, send=None, timeout=10):
    """`openssl s_client -connect 127.0.0.1:PORT ARGS`.  Without `send` it
    does the handshake, prints what it got and leaves; with `send` (bytes,
    a request ending in Connection: close) it writes them and reads until
    the server closes."""
    argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port] + list(args)
    if send is not None:
        argv.append("-ign_eof")
    return run(argv, send, timeout)


def served_pem(out):
    """The server certificate s_client printed (PEM), or None."""
    m = re.search(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", out, re.S)
    return m.group(0) if m else None


def session_line(out):
    """'New, TLSv1.3, Cipher is ...' or 'Reused, ...' from s_client."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)$", out, re.M)
    return m.groups() if m else None


class CurlResult:
    def __init__(self, p):
        self.rc = p.returncode
        self.body = p.stdout
        self.err = p.err
        self.status = None
        self.headers = {}
        for line in p.err.splitlines():
            m = re.match(r"< (HTTP/\S+) (\d+)", line)
            if m:
                self.status = int(m.group(2))
                self.headers = {}
                continue
            m = re.match(r"< ([^:\s]+): ?(.*)$", line)
            if m:
                self.headers[m.group(1).lower()] = m.group(2).rstrip("\r")
        m = re.search(r"SSL connection using (\S+) / (\S+)", p.err)
        self.version, self.cipher = m.groups() if m else (None, None)
        m = re.search(r"ALPN: server accepted (\S+)", p.err)
        self.alpn = m.group(1) if m else None

    def __repr__(self):
        return "<curl rc=%d status=%s %s %s alpn=%s\n%s>" % (
            self.rc, self.status, self.version, self.cipher, self.alpn, self.err[-3000:])


def curl(port, target, *args, name="default.test", cacert=True):
    """curl https://NAME:PORT/TARGET with NAME resolved to 127.0.0.1 and the
    test CA trusted; -v for the TLS version, cipher, ALPN and headers."""
    argv = [CURL, "-sS", "-v", "--max-time", "10", "--resolve", "%s:%d:127.0.0.1" % (name, port)]
    if cacert:
        argv += ["--cacert", pki.ca.cert]
    argv += list(args) + ["https://%s:%d%s" % (name, port, target)]
    return CurlResult(run(argv, timeout=20))


def client_context(minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    return ctx


class TLSConn(H.RawConn):
    """harness.RawConn over TLS (Python's ssl, the test CA trusted, the name
    verified)."""

    def __init__(self, port, server_name="default.test", ctx=None, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = (ctx or client_context()).wrap_socket(raw, server_hostname=server_name)
        except BaseException:
            raw.close()
            raise
        self.port = port
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)


def http_request(target, host="default.test"):
    return H.build_request("GET", target, [("Connection", "close")], host=host)


def metric(proxy, name):
    """The value of metric line `name` (with its labels, as printed)."""
    status, text = proxy.admin("GET", "/metrics")
    assert status == 200, (status, text)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line[len(name) + 1:])
    return None


def worker_connections(proxy):
    """freshcache_worker_connections of each worker, in worker order."""
    status, text = proxy.admin("GET", "/metrics")
    assert status == 200, (status, text)
    return [int(m.group(2)) for m in
            re.finditer(r'(?m)^freshcache_worker_connections\{worker="(\d+)"\} (\d+)$', text)]


def wait_worker_connections(proxy, want, timeout=5.0):
    """Poll until the workers hold `want` connections in all."""
    deadline = time.monotonic() + timeout
    while True:
        per = worker_connections(proxy)
        if sum(per) == want or time.monotonic() > deadline:
            return per
        time.sleep(0.05)


def wait_metric(proxy, name, want, timeout=5.0):
    """Poll until metric `name` reaches `want`; then a moment more, so a
    count that goes past it shows.  Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric(proxy, name)
        if v is not None and v >= want:
            time.sleep(0.2)
            return metric(proxy, name)
        if time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def log_text(proxy):
    with open(proxy.log_path, errors="replace") as f:
        return f.read()


def check_config(config_path):
    """`freshcached -t -c FILE`: (exit status, stdout, stderr)."""
    p = subprocess.run([H.FRESHCACHED, "-t", "-c", config_path], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def start_proxy(testcase, over, listen_tls=None, log_level="warn"):
    """A daemon of the test's own: default_config() (origin: the class's
    test-origin) with `over` merged in; with listen_tls, listen[1] is a TLS
    listener with that section.  Stopped when the test ends."""
    d = tempfile.mkdtemp(prefix="fc-tls-", dir=testcase.tmp)
    listen = [{"address": "127.0.0.1:%d" % H.free_port()}]
    if listen_tls is not None:
        listen.append({"address": "127.0.0.1:%d" % H.free_port(), "tls": listen_tls})
    cfg = H.deep_merge(H.default_config(0, testcase.origin.url, d), {
        "listen": listen,
        "log": {"level": log_level},
        "limits": {"handshake_timeout": "%gs" % HANDSHAKE_TIMEOUT},
    })
    cfg = H.deep_merge(cfg, over)
    p = H.Proxy(cfg, d)
    testcase.addCleanup(lambda: p.stop() if p.alive() else None)
    p.tls_port = int(listen[1]["address"].rsplit(":", 1)[1]) if listen_tls is not None else None
    return p


# ---------------------------------------------------------------------------
# the test classes' daemon: a plain listener first (the harness waits on
# it), the TLS one second


def single(c):
    return {"certificate": c.cert, "key": c.key}


class TLSCase(H.ProxyTestCase):
    extra = {}              # merged into the config

    @classmethod
    def tls_section(cls):
        """listen[1].tls"""
        return single(pki.ecdsa)

    @classmethod
    def setUpClass(cls):
        need_programs()
        cls.tls_port = H.free_port()
        cls.config = H.deep_merge({
            "listen": [{"address": "127.0.0.1:%d" % H.free_port()},
                       {"address": "127.0.0.1:%d" % cls.tls_port,
                        "tls": cls.tls_section()}],
            "limits": {"handshake_timeout": "%gs" % HANDSHAKE_TIMEOUT},
        }, cls.extra)
        super().setUpClass()

    def assertStillServes(self, name="default.test"):
        seed = self.uniq()
        r = curl(self.tls_port, url("/t/body", size=100, seed=seed), name=name)
        self.assertEqual((r.rc, r.status, r.body), (0, 200, expected_body(100, seed)), r)
        self.assertOk(self.get(url("/t/body", size=100, seed=seed)), expected_body(100, seed))


# ---------------------------------------------------------------------------
# 1. versions, certificates, ALPN, ciphers, sessions on one listener


def four_certificates(p):
    return {"certificates": [single(p.ecdsa), single(p.rsa), single(p.wild), single(p.other)]}


class ListenerTest(TLSCase):

    @classmethod
    def tls_section(cls):
        return four_certificates(pki)

    def test_tls10_and_tls11_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            p = s_client(self.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                         "-servername", "default.test")
            self.assertEqual(p.returncode, 1, p.out + p.err)
            # the server's alert, not the client's own refusal
            self.assertIn("alert protocol version", p.err, flag)
            self.assertIn("SSL alert number 70", p.err, flag)
            self.assertIsNone(served_pem(p.out), flag)
            self.assertEqual(session_line(p.out), ("New", "(NONE)", "(NONE)"), flag)
        self.assertStillServes()

    def test_tls12_and_tls13(self):
        seed = self.uniq()
        t = url("/t/body", size=1000, seed=seed, cc="max-age=60")
        r = curl(self.tls_port, t, "--tlsv1.2", "--tls-max", "1.2")
        self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.2"), r)
        self.assertEqual(r.body, expected_body(1000, seed))
        # forward secret and AEAD, with the ECDSA default certificate
        self.assertEqual(r.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384", r)
        r = curl(self.tls_port, t, "--tlsv1.3")
        self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.3"), r)
        self.assertEqual(r.body, expected_body(1000, seed))
        self.assertIn("hit", r.headers.get("cache-status", ""), r)
        # without a version asked for, 1.3 is preferred
        p = s_client(self.tls_port, "-servername", "default.test")
        self.assertEqual(session_line(p.out)[:2], ("New", "TLSv1.3"), p.out)

    def test_request_in_the_finished_segment(self):
        """TLS 1.3: the client's Finished and its first request in one TCP
        segment.  The server's handshake reads both (read_ahead), so no
        socket event announces the request: the connection must find it in
        the transport, not wait for a client that waits for it."""
        seed = self.uniq()
        t = url("/t/body", size=700, seed=seed, cc="max-age=60")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="default.test")
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        s.sendall(outgoing.read())
                    data = s.recv(65536)
                    self.assertTrue(data, "closed during the handshake")
                    incoming.write(data)
            self.assertEqual(tls.version(), "TLSv1.3")
            # Finished is in `outgoing`, unsent: the request joins it
            tls.write(b"GET %s HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n"
                      % t.encode())
            s.sendall(outgoing.read())
            s.settimeout(HANDSHAKE_TIMEOUT / 2)
            answer = b""
            while True:
                try:
                    chunk = tls.read(65536)
                    if not chunk:       # close_notify
                        break
                    answer += chunk
                    continue
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    break
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    self.fail("no answer: the request read with the handshake was "
                              "left in the transport (got %r)" % answer[:80])
                if not data:
                    break
                incoming.write(data)
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertEqual(body, expected_body(700, seed))

    def test_malformed_request_closes_in_stages(self):
        """A 400 over TLS with more bytes behind the bad request: the proxy
        sends the 400, its close_notify and a FIN, then reads what else
        comes and drops it — never a reset that could destroy the 400."""
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        s = H.tls_client(raw, alpn=("http/1.1",), server_name="default.test")
        try:
            s.sendall(b"GARBAGE\r\n\r\n" + b"x" * 60000)
            got = b""
            while True:
                try:
                    d = s.recv(65536)
                except ssl.SSLZeroReturnError:
                    break       # close_notify
                except ConnectionResetError:
                    self.fail("reset after %d bytes" % len(got))
                if not d:
                    break
                got += d
            self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got[:100])
            # our side is shut, not the socket: the proxy still reads
            plain = s.unwrap()      # our close_notify; the TCP socket
            plain.sendall(b"more bytes, dropped")
            self.assertEqual(plain.recv(100), b"")
            plain.close()
        finally:
            s.close()
        self.assertStillServes()

    def test_sni_chooses_the_certificate(self):
        cases = [
            ("default.test", pki.ecdsa),
            ("rsa.test", pki.rsa),
            ("a.wild.test", pki.wild),
            ("other.test", pki.other),
            ("OTHER.test", pki.other),          # names are case-insensitive
            ("unknown.test", pki.ecdsa),        # no match: the default
            ("wild.test", pki.ecdsa),           # *.wild.test is one label, not none
            ("a.b.wild.test", pki.ecdsa),       # nor two
        ]
        for name, want in cases:
            p = s_client(self.tls_port, "-servername", name, "-verify_return_error",
                         "-CAfile", pki.ca.cert)
            self.assertEqual(served_pem(p.out), want.pem, "SNI %s: expected %s\n%s"
                             % (name, want.cert, p.out))
        # the subject and names, as a client sees them
        p = s_client(self.tls_port, "-servername", "x.wild.test", "-CAfile", pki.ca.cert,
                     "-verify_hostname", "x.wild.test", "-verify_return_error")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("subject=CN = *.wild.test", p.out)
        self.assertIn("Verify return code: 0 (ok)", p.out)
        x = run([OPENSSL, "x509", "-noout", "-ext", "subjectAltName"], served_pem(p.out).encode())
        self.assertEqual(x.out.split(), ["X509v3", "Subject", "Alternative", "Name:",
                                         "DNS:*.wild.test"])
        # no SNI at all: the default
        p = s_client(self.tls_port, "-noservername")
        self.assertEqual(served_pem(p.out), pki.ecdsa.pem, p.out)

    def test_rsa_and_ecdsa_requests(self):
        seed = self.uniq()
        t = url("/t/body", size=100, seed=seed)
        for name, kind in (("rsa.test", "ECDHE-RSA-"), ("default.test", "ECDHE-ECDSA-"),
                           ("b.wild.test", "ECDHE-ECDSA-")):
            r = curl(self.tls_port, t, "--tlsv1.2", "--tls-max", "1.2", name=name)
            self.assertEqual((r.rc, r.status), (0, 200), r)
            self.assertEqual(r.body, expected_body(100, seed))
            self.assertTrue(r.cipher.startswith(kind), r)
            r = curl(self.tls_port, t, "--tlsv1.3", name=name)
            self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.3"), r)
        # curl checks the name: other.test's certificate is not rsa.test's
        p = s_client(self.tls_port, "-servername", "other.test", "-CAfile", pki.ca.cert,
                     "-verify_hostname", "rsa.test", "-verify_return_error")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Verification error: hostname mismatch", p.out)

    def test_alpn(self):
        """h2 first, then http/1.1 (HTTP/2 over TLS is chosen by ALPN)."""
        r = curl(self.tls_port, "/t/body?size=1")
        self.assertEqual((r.rc, r.status, r.alpn), (0, 200, "h2"), r)
        r = curl(self.tls_port, "/t/body?size=1", "--http1.1")
        self.assertEqual((r.rc, r.status, r.alpn), (0, 200, "http/1.1"), r)
        for offer, want in (("http/1.1", "http/1.1"), ("h2,http/1.1", "h2"),
                            ("http/1.1,h2", "h2"), ("h2", "h2"),
                            ("spdy/3,http/1.1", "http/1.1"), ("spdy/3", None)):
            p = s_client(self.tls_port, "-servername", "default.test", "-alpn", offer)
            self.assertEqual(p.returncode, 0, p.err)
            if want is None:
                self.assertIn("No ALPN negotiated", p.out, offer)
            else:
                self.assertIn("ALPN protocol: %s\n" % want, p.out, offer)
        # no protocol in common is not an error: HTTP/1.1 is served
        p = s_client(self.tls_port, "-servername", "default.test", "-alpn", "spdy/3",
                     send=http_request("/t/body?size=5"))
        self.assertIn("No ALPN negotiated", p.out)
        self.assertIn("HTTP/1.1 200 OK\r\n", p.out)
        # nor is no ALPN at all
        p = s_client(self.tls_port, "-servername", "default.test",
                     send=http_request("/t/body?size=5"))
        self.assertIn("No ALPN negotiated", p.out)
        self.assertIn("HTTP/1.1 200 OK\r\n", p.out)

    def test_default_ciphers(self):
        """TLS 1.2: forward-secret AEAD suites only."""
        for suite, ok in (("ECDHE-ECDSA-AES128-GCM-SHA256", True),
                          ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
                          ("ECDHE-ECDSA-AES128-SHA256", False),   # CBC
                          ("ECDHE-ECDSA-AES256-SHA", False),      # CBC
                          ("AES128-GCM-SHA256", False),           # RSA key exchange
                          ("DHE-RSA-AES128-GCM-SHA256", False)):  # not offered either
            name = "rsa.test" if "RSA" in suite or suite.startswith("AES") else "default.test"
            p = s_client(self.tls_port, "-tls1_2", "-cipher", suite + ":@SECLEVEL=0",
                         "-servername", name)
            if ok:
                self.assertEqual(session_line(p.out), ("New", "TLSv1.2", suite), p.out + p.err)
            else:
                self.assertEqual(p.returncode, 1, suite)
                self.assertIn("alert handshake failure", p.err, suite)
        for suite in ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"):
            p = s_client(self.tls_port, "-tls1_2", "-cipher", suite, "-servername", "rsa.test")
            self.assertEqual(session_line(p.out), ("New", "TLSv1.2", suite), p.out + p.err)

    def test_no_renegotiation(self):
        """TLS 1.2 renegotiation ("R" to s_client) is refused with an alert;
        the daemon goes on."""
        p = run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls_port, "-tls1_2",
                 "-servername", "default.test"], b"R\n")
        self.assertEqual(session_line(p.out)[:2], ("New", "TLSv1.2"), p.out)
        self.assertIn("RENEGOTIATING", p.out + p.err)
        self.assertIn(":no renegotiation:", p.err)
        self.assertStillServes()

    def resumed(self, version_flag, n=12):
        """A full handshake saving its session, then `n` connections
        resuming it: what each reported, and the sessions' responses."""
        sess = os.path.join(self.tmp, "session-%s.pem" % self.uniq())
        req = http_request("/t/body?size=3")
        p = s_client(self.tls_port, version_flag, "-servername", "default.test",
                     "-sess_out", sess, send=req)
        self.assertEqual(session_line(p.out)[0], "New", p.out)
        self.assertIn("HTTP/1.1 200 OK", p.out)
        lines = []
        for _ in range(n):
            p = s_client(self.tls_port, version_flag, "-servername", "default.test",
                         "-sess_in", sess, send=req)
            self.assertIn("HTTP/1.1 200 OK", p.out)
            lines.append(session_line(p.out))
        return lines

    def test_session_resumption_across_workers(self):
        """Tickets: both workers (SO_REUSEPORT spreads the connections by
        their source port; 12 land on one worker only one time in 2048)
        accept the tickets either issued."""
        for flag, version in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            lines = self.resumed(flag)
            self.assertEqual([ln[:2] for ln in lines], [("Reused", version)] * len(lines), lines)

    def test_tls13_resumption_brings_a_new_ticket(self):
        """A TLS 1.3 client uses a ticket once (RFC 8446 C.4; OpenSSL's
        client keeps no resumable session after using it): each
        resumption must bring a new ticket, or a returning client's next
        connection is a full handshake.  A chain of sessions, each saved
        from the connection before, resumes every time.  (TLS 1.2 clients
        keep their ticket: it resumes as before.)"""
        req = http_request("/t/body?size=3")
        sess = [os.path.join(self.tmp, "chain-%s-%d.pem" % (self.uniq(), i)) for i in range(5)]
        p = s_client(self.tls_port, "-tls1_3", "-servername", "default.test",
                     "-sess_out", sess[0], send=req)
        self.assertEqual(session_line(p.out)[:2], ("New", "TLSv1.3"), p.out + p.err)
        for i in range(1, 5):
            p = s_client(self.tls_port, "-tls1_3", "-servername", "default.test",
                         "-sess_in", sess[i - 1], "-sess_out", sess[i], send=req)
            self.assertIn("HTTP/1.1 200 OK", p.out)
            self.assertEqual(session_line(p.out)[:2], ("Reused", "TLSv1.3"),
                             "connection %d: %s" % (i, p.out + p.err))
            self.assertEqual(p.out.count("Post-Handshake New Session Ticket arrived"), 1,
                             "connection %d: %s" % (i, p.out))
        p = s_client(self.tls_port, "-tls1_2", "-servername", "default.test",
                     "-sess_out", sess[0], send=req)
        self.assertEqual(session_line(p.out)[:2], ("New", "TLSv1.2"), p.out + p.err)
        p = s_client(self.tls_port, "-tls1_2", "-servername", "default.test",
                     "-sess_in", sess[0], send=req)
        self.assertEqual(session_line(p.out)[:2], ("Reused", "TLSv1.2"), p.out + p.err)

    def test_silent_connections(self):
        """60 connections that never send a ClientHello: a real client is
        served meanwhile, and each of them is closed after
        handshake_timeout, counted as a failed handshake."""
        name = "freshcache_tls_handshake_failures_total"
        before = wait_metric(self.proxy, name, 0)
        ok_before = metric(self.proxy, "freshcache_tls_handshakes_total")
        socks = []
        try:
            for _ in range(60):
                s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
                socks.append(s)
            t0 = time.monotonic()
            seed = self.uniq()
            r = curl(self.tls_port, url("/t/body", size=100, seed=seed))
            served = time.monotonic() - t0
            self.assertEqual((r.rc, r.status, r.body), (0, 200, expected_body(100, seed)), r)
            self.assertLess(served, HANDSHAKE_TIMEOUT, "the real client waited for the silent ones")
            # accept balancing: both workers hold about half of them (the
            # kernel's SO_REUSEPORT hash alone splits 60 by 7 or more
            # about one time in three)
            per = wait_worker_connections(self.proxy, 60)
            self.assertEqual((len(per), sum(per)), (2, 60), per)
            self.assertLessEqual(max(per) - min(per), 6, per)
            # the silent ones are all still open
            for s in socks:
                s.setblocking(False)
                with self.assertRaises(BlockingIOError):
                    s.recv(1)
                s.setblocking(True)
            # ... and all closed after the deadline, with nothing sent
            deadline = t0 + HANDSHAKE_TIMEOUT + 3
            for s in socks:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                self.assertEqual(s.recv(100), b"")
            closed = time.monotonic() - t0
            self.assertGreater(closed, HANDSHAKE_TIMEOUT - 0.2)
        finally:
            for s in socks:
                s.close()
        self.assertEqual(wait_metric(self.proxy, name, before + 60), before + 60)
        self.assertEqual(metric(self.proxy, "freshcache_tls_handshakes_total"), ok_before + 1)
        # every failed handshake, on whichever worker took it, gave its
        # place back
        self.assertEqual(wait_worker_connections(self.proxy, 0), [0, 0])
        self.assertStillServes()

    def test_stalled_handshake(self):
        """Half a ClientHello, then nothing: closed at the deadline."""
        hello = capture_client_hello(self.tls_port)
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
            s.sendall(hello[:len(hello) // 2])
            t0 = time.monotonic()
            s.settimeout(HANDSHAKE_TIMEOUT + 3)
            self.assertEqual(s.recv(100), b"")
            self.assertGreater(time.monotonic() - t0, HANDSHAKE_TIMEOUT - 0.2)
        self.assertStillServes()

    def closed_at_once(self, data):
        """Send `data` to the TLS port: the connection must close well
        before the handshake deadline; what came back."""
        name = "freshcache_tls_handshake_failures_total"
        before = wait_metric(self.proxy, name, 0)
        c = H.RawConn(self.tls_port, timeout=10)
        try:
            t0 = time.monotonic()
            c.send(data)
            self.assertTrue(c.wait_closed(HANDSHAKE_TIMEOUT + 3), "not closed")
            self.assertLess(time.monotonic() - t0, HANDSHAKE_TIMEOUT / 2,
                            "closed by the deadline, not at once")
        finally:
            c.close()
        self.assertEqual(wait_metric(self.proxy, name, before + 1), before + 1)
        return bytes(c.buf)

    def test_plain_http_to_the_tls_port(self):
        # A plain 400 saying why, as nginx answers (no TLS alert: the peer
        # does not speak TLS), then closed.
        for req in (H.build_request("GET", "/t/body?size=10", host="x"),
                    b"GET / HTTP/1.0\r\n\r\n"):
            got = self.closed_at_once(req)
            head, _, body = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 400 "), got[:100])
            self.assertIn(b"\r\nConnection: close", head)
            self.assertEqual(body, b"The plain HTTP request was sent to HTTPS port\n")
            m = re.search(rb"\r\nContent-Length: (\d+)", head)
            self.assertEqual(int(m.group(1)), len(body))
        self.assertStillServes()

    def test_garbage(self):
        import random
        rnd = random.Random(10)
        for _ in range(5):
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 2000)))
            if data[0] == 0x16:         # a handshake record might wait for more
                data = b"\x00" + data
            got = self.closed_at_once(data)
            self.assertIn(got, (b"", b"\x15\x03\x03\x00\x02\x02\x46"), data[:20])
        # a handshake record holding no ClientHello: an alert, then closed
        got = self.closed_at_once(b"\x16\x03\x01\x00\x05hello")
        self.assertEqual(got[:5], b"\x15\x03\x03\x00\x02")    # alert, fatal
        self.assertEqual(got[5], 2)
        # a well-formed ClientHello, then garbage instead of the client's
        # second flight
        hello = capture_client_hello(self.tls_port)
        self.closed_at_once(hello + b"\x17\x03\x03\x00\x10" + b"\xee" * 16)
        self.assertStillServes()

    def test_expiry_metric(self):
        status, text = self.proxy.admin("GET", "/metrics")
        self.assertEqual(status, 200)
        got = sorted(line for line in text.splitlines()
                     if line.startswith("freshcache_tls_certificate_expiry_timestamp_seconds"))
        want = sorted('freshcache_tls_certificate_expiry_timestamp_seconds{name="%s"} %d'
                      % (c.names[0], c.not_after)
                      for c in (pki.ecdsa, pki.rsa, pki.wild, pki.other))
        self.assertEqual(got, want)
        self.assertIn("# TYPE freshcache_tls_certificate_expiry_timestamp_seconds gauge", text)

    def test_expiry_warning_at_start(self):
        warned = [ln for ln in log_text(self.proxy).splitlines() if "TLS certificate" in ln]
        self.assertEqual(len(warned), 1, warned)
        self.assertRegex(warned[0], r" warning: TLS certificate \*\.wild\.test \(%s\) expires in "
                                    r"(4\.9|5\.0) days$" % re.escape(pki.wild.cert))

    def test_x_forwarded_proto(self):
        seed = self.uniq()
        t = url("/t/body", size=10, seed=seed)
        # a client's own X-Forwarded-Proto is not believed (no trusted_proxies)
        with TLSConn(self.tls_port) as c:
            r = c.request("GET", t, {"X-Forwarded-Proto": "http"}, host="default.test")
        self.assertOk(r, expected_body(10, seed))
        t2 = url("/t/body", size=10, seed=seed + "-plain")
        r = self.get(t2, {"X-Forwarded-Proto": "https"})
        self.assertOk(r, expected_body(10, seed + "-plain"))
        # HTTP/2 over TLS (curl's default)
        t3 = url("/t/body", size=10, seed=seed + "-h2")
        r = curl(self.tls_port, t3, "-H", "X-Forwarded-Proto: http")
        self.assertEqual((r.rc, r.status, r.alpn), (0, 200, "h2"), r)
        (tls_req,), (plain_req,), (h2_req,) = (self.origin.log(t), self.origin.log(t2),
                                               self.origin.log(t3))
        self.assertEqual(H.req_header(tls_req, "X-Forwarded-Proto"), "https")
        self.assertEqual(H.req_header(plain_req, "X-Forwarded-Proto"), "http")
        self.assertEqual(H.req_header(h2_req, "X-Forwarded-Proto"), "https")

    def test_one_cache_for_both_listeners(self):
        seed = self.uniq()
        host = "shared.test"
        t = url("/t/body", size=2000, seed=seed, cc="max-age=60")
        with TLSConn(self.tls_port) as c:
            r = c.request("GET", t, host=host)
        self.assertOk(r, expected_body(2000, seed))
        self.assertEqual(r.cache_status.get("fwd"), "miss")
        self.assertTrue(r.cache_status.get("stored"), r)
        r = self.get(t, {"Host": host})
        self.assertOk(r, expected_body(2000, seed))
        self.assertHit(r)
        # and the other way round
        t = url("/t/body", size=2000, seed=seed + "-2", cc="max-age=60")
        self.assertNotHit(self.get(t, {"Host": host}))
        with TLSConn(self.tls_port) as c:
            r = c.request("GET", t, host=host)
            self.assertOk(r, expected_body(2000, seed + "-2"))
            self.assertHit(r)
            # keep-alive on the TLS connection
            r = c.request("GET", t, host=host)
            self.assertHit(r)
        self.assertOriginCount(t, 1)

    def test_large_bodies_and_pipelining(self):
        """Bodies larger than a record and than the socket buffer, several
        requests pipelined on one TLS connection."""
        seed = self.uniq()
        sizes = (1, 16383, 16384, 16385, 300000, 3 * H.MiB)
        ts = [url("/t/body", size=n, seed=seed, cc="max-age=60") for n in sizes]
        for _ in range(2):      # a miss each, then a hit each
            with TLSConn(self.tls_port, timeout=20) as c:
                c.send(b"".join(H.build_request("GET", t, host="default.test") for t in ts))
                for t, n in zip(ts, sizes):
                    r = c.read_response()
                    self.assertOk(r, expected_body(n, seed))
        for t in ts:
            self.assertOriginCount(t, 1)


def capture_client_hello(port):
    """The bytes of one ClientHello (Python's ssl, with SNI), caught by a
    throwaway listener of our own."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        out = {}

        def client():
            try:
                with socket.create_connection(srv.getsockname(), timeout=5) as s:
                    ctx.wrap_socket(s, server_hostname="default.test")
            except OSError as e:
                out["e"] = e

        th = threading.Thread(target=client, daemon=True)
        th.start()
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                d = conn.recv(4096)
                if not d:
                    break
                data += d
        th.join(5)
    assert data[:1] == b"\x16", data[:10]
    return data[:5 + int.from_bytes(data[3:5], "big")]


# ---------------------------------------------------------------------------
# 2. handshakes count against max_connections


class MaxConnectionsTest(TLSCase):
    extra = {"limits": {"max_connections": 8}}

    def test_handshakes_count(self):
        socks = []
        try:
            for _ in range(8):
                socks.append(socket.create_connection(("127.0.0.1", self.tls_port), timeout=10))
            time.sleep(0.3)     # the daemon has accepted them
            # the ninth is closed at accept
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
                s.settimeout(HANDSHAKE_TIMEOUT / 2)
                try:
                    self.assertEqual(s.recv(1), b"")
                except ConnectionResetError:
                    pass
            # once the silent ones are gone, clients get in again
            for s in socks:
                s.settimeout(HANDSHAKE_TIMEOUT + 3)
                self.assertEqual(s.recv(1), b"")
        finally:
            for s in socks:
                s.close()
        time.sleep(0.2)
        self.assertStillServes()


# ---------------------------------------------------------------------------
# 3. tls.protocols and tls.ciphers


class SettingsTest(H.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        need_programs()
        super().setUpClass()

    def test_protocols_tls13_only(self):
        p = start_proxy(self, {}, dict(single(pki.ecdsa), protocols=["TLSv1.3"]))
        r = curl(p.tls_port, "/t/body?size=3", "--tlsv1.2", "--tls-max", "1.2")
        self.assertEqual(r.rc, 35, r)           # CURLE_SSL_CONNECT_ERROR
        self.assertIn("alert protocol version", r.err)
        r = curl(p.tls_port, "/t/body?size=3", "--tlsv1.2")
        self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.3"), r)

    def test_protocols_tls12_only(self):
        p = start_proxy(self, {}, dict(single(pki.ecdsa), protocols=["TLSv1.2"]))
        r = curl(p.tls_port, "/t/body?size=3", "--tlsv1.3")
        self.assertEqual(r.rc, 35, r)
        self.assertIn("alert protocol version", r.err)
        r = curl(p.tls_port, "/t/body?size=3")
        self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.2"), r)
        s = s_client(p.tls_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertIn("alert protocol version", s.err)

    def test_failures_logged_at_debug_only(self):
        for level, logged in (("debug", True), ("info", False)):
            p = start_proxy(self, {}, single(pki.ecdsa), log_level=level)
            with H.RawConn(p.tls_port) as c:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(c.wait_closed(5))
            r = s_client(p.tls_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            self.assertIn("alert protocol version", r.err)
            self.assertEqual(wait_metric(p, "freshcache_tls_handshake_failures_total", 2), 2)
            lines = [ln.split(": ", 1)[1] for ln in log_text(p).splitlines()
                     if "TLS handshake with" in ln]
            self.assertEqual(lines, ["TLS handshake with 127.0.0.1 failed: http request",
                                     "TLS handshake with 127.0.0.1 failed: unsupported protocol"]
                             if logged else [], level)
            p.stop()

    def test_ciphers(self):
        p = start_proxy(self, {}, dict(single(pki.ecdsa), ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"))
        for suite, ok in (("ECDHE-ECDSA-CHACHA20-POLY1305", True),
                          ("ECDHE-ECDSA-AES256-GCM-SHA384", False),
                          ("ECDHE-ECDSA-AES128-GCM-SHA256", False)):
            s = s_client(p.tls_port, "-tls1_2", "-cipher", suite)
            if ok:
                self.assertEqual(session_line(s.out), ("New", "TLSv1.2", suite), s.out + s.err)
            else:
                self.assertIn("alert handshake failure", s.err, suite)
        # the client's preference does not matter: the server's list does
        r = curl(p.tls_port, "/t/body?size=3", "--tlsv1.2", "--tls-max", "1.2")
        self.assertEqual((r.rc, r.status, r.cipher), (0, 200, "ECDHE-ECDSA-CHACHA20-POLY1305"), r)
        # TLS 1.3 suites are not the TLS 1.2 list's business
        r = curl(p.tls_port, "/t/body?size=3")
        self.assertEqual((r.rc, r.status, r.version), (0, 200, "TLSv1.3"), r)


# ---------------------------------------------------------------------------
# 4. bad files: -t and a start, FILE:LINE:COLUMN


class BadFilesTest(H.ProxyTestCase):
    n = 0

    @classmethod
    def setUpClass(cls):
        need_programs()
        super().setUpClass()

    def write_config(self, tls_lines):
        """A config file whose listen[1] has `tls_lines` (already indented);
        (its directory, its path)."""
        type(self).n += 1
        d = os.path.join(self.tmp, "bad%d" % self.n)
        os.makedirs(d)
        path = os.path.join(d, "freshcache.yaml")
        write(path, "listen:\n"
                    "  - address: 127.0.0.1:%d\n"
                    "  - address: 127.0.0.1:%d\n"
                    "    tls:\n%s"
                    "origin:\n  url: http://127.0.0.1:9\n"
                    "admin:\n  socket: %s/admin.sock\n"
                    "state_dir: %s/state\n"
                    "log:\n  access: off\n" % (H.free_port(), H.free_port(), tls_lines, d, d))
        return d, path

    def assertRefused(self, tls_lines, *want):
        """-t and a start both exit 1 printing exactly `want` (@F@: the
        config file, @D@: its directory)."""
        d, path = self.write_config(tls_lines)
        with open(path) as f:
            text = f.read()
        write(path, text.replace("@D@", d))
        want = [w.replace("@F@", path).replace("@D@", d) for w in want]
        rc, out, err = check_config(path)
        self.assertEqual((rc, out), (1, ""), err)
        self.assertEqual(err.splitlines(), want)
        p = subprocess.run([H.FRESHCACHED, "-c", path], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual((p.stdout + p.stderr).splitlines(), want, "a start says what -t said")
        return d

    def test_missing_file(self):
        self.assertRefused(
            "      certificate: %s\n      key: @D@/nokey.pem\n" % pki.ecdsa.cert,
            "@F@:6:12: listen[1].tls.key: cannot read key @D@/nokey.pem: "
            "No such file or directory")

    def test_key_does_not_match(self):
        # another ECDSA key: OpenSSL refuses it as it loads it
        self.assertRefused(
            "      certificate: %s\n      key: %s\n" % (pki.ecdsa.cert, pki.other.key),
            "@F@:6:12: listen[1].tls.key: cannot load key %s: key values mismatch"
            % pki.other.key)
        # an RSA key for an ECDSA certificate: loaded, then found not to match
        self.assertRefused(
            "      certificate: %s\n      key: %s\n" % (pki.ecdsa.cert, pki.rsa.key),
            "@F@:6:12: listen[1].tls.key: key %s does not match certificate %s"
            % (pki.rsa.key, pki.ecdsa.cert))

    def test_garbage_pem(self):
        d, _ = self.write_config("      certificate: x\n      key: y\n")
        bad = os.path.join(d, "garbage.pem")
        write(bad, "-----BEGIN CERTIFICATE-----\nthis is not base64 !!!\n"
                   "-----END CERTIFICATE-----\n")
        self.assertRefused(
            "      certificate: %s\n      key: %s\n" % (bad, pki.ecdsa.key),
            "@F@:5:20: listen[1].tls.certificate: cannot load certificate %s: "
            "PEM lib" % bad)
        text = os.path.join(d, "text.pem")
        write(text, "just some text\n")
        self.assertRefused(
            "      certificate: %s\n      key: %s\n" % (pki.ecdsa.cert, text),
            "@F@:6:12: listen[1].tls.key: cannot load key %s: PEM lib" % text)
        empty = os.path.join(d, "empty.pem")
        write(empty, "")
        self.assertRefused(
            "      certificate: %s\n      key: %s\n" % (empty, pki.ecdsa.key),
            "@F@:5:20: listen[1].tls.certificate: cannot load certificate %s: "
            "PEM lib" % empty)

    def test_in_a_list(self):
        """Each item of tls.certificates is checked, and named."""
        self.assertRefused(
            "      certificates:\n"
            "        - { certificate: %s, key: %s }\n"
            "        - { certificate: %s, key: %s }\n" % (pki.ecdsa.cert, pki.ecdsa.key,
                                                         pki.rsa.cert, pki.wild.key),
            "@F@:7:%d: listen[1].tls.certificates[1].key: key %s does not match certificate %s"
            % (len("        - { certificate: %s, key: " % pki.rsa.cert) + 1, pki.wild.key,
               pki.rsa.cert))

    def test_bad_settings(self):
        pair = "      certificate: %s\n      key: %s\n" % (pki.ecdsa.cert, pki.ecdsa.key)
        self.assertRefused(
            pair + '      ciphers: "NOTHING-MATCHES"\n',
            "@F@:7:16: listen[1].tls: invalid TLS settings: no cipher match")
        self.assertRefused(
            pair + "      protocols: [TLSv1.1, TLSv1.2]\n",
            "@F@:7:19: listen[1].tls.protocols: \"TLSv1.1\" is deprecated and not supported "
            "(RFC 8996) (expected TLSv1.2 or TLSv1.3)")
        self.assertRefused(
            pair + "      protocols: [TLSv1.4]\n",
            "@F@:7:19: listen[1].tls.protocols: \"TLSv1.4\" is not a TLS version "
            "(expected TLSv1.2 or TLSv1.3)")
        # the order of the list does not matter
        d, path = self.write_config(pair + "      protocols: [TLSv1.3, TLSv1.2]\n")
        self.assertEqual(check_config(path), (0, "OK\n", ""))

    def test_relative_paths(self):
        """Relative to the config file's directory, not to the working
        directory."""
        d, path = self.write_config("      certificate: c.pem\n      key: k.pem\n")
        shutil.copy(pki.ecdsa.cert, os.path.join(d, "c.pem"))
        shutil.copy(pki.ecdsa.key, os.path.join(d, "k.pem"))
        p = subprocess.run([os.path.abspath(H.FRESHCACHED), "-t", "-c", path],
                           capture_output=True, text=True, timeout=20, cwd="/")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "OK\n", ""))

    def test_origin_client_certificate(self):
        d, path = self.write_config("      certificate: %s\n      key: %s\n"
                              % (pki.ecdsa.cert, pki.ecdsa.key))
        with open(path) as f:
            text = f.read()
        write(path, text.replace("  url: http://127.0.0.1:9\n",
                                 "  url: https://127.0.0.1:9\n"
                                 "  tls:\n"
                                 "    certificate: %s\n"
                                 "    key: %s\n" % (pki.client.cert, pki.other.key)))
        rc, out, err = check_config(path)
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err.splitlines(), [
            "%s:11:10: origin.tls.key: cannot load key %s: key values mismatch"
            % (path, pki.other.key)])


# ---------------------------------------------------------------------------
# 5. reload


class ReloadTest(TLSCase):
    """The listener's certificate and key are files of this class's own,
    replaced by the tests."""

    @classmethod
    def tls_section(cls):
        cls.live_dir = tempfile.mkdtemp(prefix="fc-tls-live-")
        H._tmpdirs.append(cls.live_dir)
        cls.addClassCleanup(shutil.rmtree, cls.live_dir, ignore_errors=True)
        cls.install(pki.ecdsa)
        return {"certificate": os.path.join(cls.live_dir, "live.pem"),
                "key": os.path.join(cls.live_dir, "live.key")}

    @classmethod
    def install(cls, c):
        shutil.copy(c.cert, os.path.join(cls.live_dir, "live.pem.tmp"))
        shutil.copy(c.key, os.path.join(cls.live_dir, "live.key.tmp"))
        os.rename(os.path.join(cls.live_dir, "live.pem.tmp"), os.path.join(cls.live_dir, "live.pem"))
        os.rename(os.path.join(cls.live_dir, "live.key.tmp"), os.path.join(cls.live_dir, "live.key"))

    def setUp(self):
        super().setUp()
        self.addCleanup(self.restore)

    def restore(self):
        self.install(pki.ecdsa)
        self.proxy.admin("POST", "/reload")

    def served(self):
        ctx = client_context()
        ctx.check_hostname = False
        with TLSConn(self.tls_port, ctx=ctx) as c:
            return c.peer_der()

    def wait_served(self, der, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.served() != der:
            if time.monotonic() > deadline:
                self.fail("the new certificate is not served %gs after SIGHUP" % timeout)
            time.sleep(0.05)

    def test_sighup_swaps_the_certificate(self):
        seed = self.uniq()
        t = url("/t/body", size=5000, seed=seed, cc="max-age=60")
        self.assertEqual(self.served(), pki.ecdsa.der)
        ctx = client_context()
        ctx.check_hostname = False
        with TLSConn(self.tls_port, ctx=ctx) as old:
            self.assertOk(old.request("GET", t), expected_body(5000, seed))
            self.install(pki.other)
            os.kill(self.proxy.proc.pid, signal.SIGHUP)
            self.wait_served(pki.other.der)
            # the open connection goes on, on the old certificate
            r = old.request("GET", t)
            self.assertOk(r, expected_body(5000, seed))
            self.assertHit(r)
            self.assertEqual(old.peer_der(), pki.ecdsa.der)
            # and a new one verifies against its new name
            r = curl(self.tls_port, t, name="other.test")
            self.assertEqual((r.rc, r.status, r.body), (0, 200, expected_body(5000, seed)), r)
            self.assertOk(old.request("GET", t), expected_body(5000, seed))
        # the expiry metric follows
        status, text = self.proxy.admin("GET", "/metrics")
        self.assertIn('freshcache_tls_certificate_expiry_timestamp_seconds{name="other.test"} %d\n'
                      % pki.other.not_after, text)
        self.assertNotIn('{name="default.test"}', text)

    def test_bad_key_refused_old_certificate_serves(self):
        self.install(pki.other)
        self.proxyctl("reload")
        self.assertEqual(self.served(), pki.other.der)
        # a key that does not match: refused, FILE:LINE:COLUMN
        shutil.copy(pki.rsa.key, os.path.join(self.live_dir, "live.key"))
        p = self.proxyctl("reload", expect=1)
        self.assertEqual(p.stderr, "%s:6:12: listen[1].tls.key: key %s does not match "
                                   "certificate %s\n"
                         % (self.proxy.config_path, os.path.join(self.live_dir, "live.key"),
                            os.path.join(self.live_dir, "live.pem")))
        self.assertEqual(self.served(), pki.other.der)
        # by SIGHUP too; logged
        os.kill(self.proxy.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while log_text(self.proxy).count("does not match certificate") < 2:
            self.assertLess(time.monotonic(), deadline, log_text(self.proxy)[-2000:])
            time.sleep(0.05)
        self.assertEqual(self.served(), pki.other.der)
        self.assertStillServes("other.test")

    def test_sessions_resume_after_reload(self):
        sess = os.path.join(self.tmp, "session-%s.pem" % self.uniq())
        req = http_request("/t/body?size=3")
        p = s_client(self.tls_port, "-sess_out", sess, send=req)
        self.assertEqual(session_line(p.out)[0], "New", p.out)
        self.proxyctl("reload")
        for _ in range(4):
            p = s_client(self.tls_port, "-sess_in", sess, send=req)
            self.assertEqual(session_line(p.out)[0], "Reused", p.out)
            self.assertIn("HTTP/1.1 200 OK", p.out)


# ---------------------------------------------------------------------------
# 6. origins over HTTPS


class TLSOrigin:
    """An HTTPS origin (Python's ssl and http.server, HTTP/1.1 keep-alive):
    GET PATH answers 200 with body b"origin PATH" and Cache-Control:
    max-age=60.  It keeps, per request, the path, the headers, the SNI the
    connection asked for, the client certificate's subject (mTLS) and
    whether the session was resumed; and each failed handshake's reason.
    close=True closes every connection after its response (with a TLS
    close_notify, as nginx does)."""

    def __init__(self, cert, client_ca=None, close=False):
        self.requests = []
        self.failures = []
        self.connections = 0
        self.close = close
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert.cert, cert.key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca.cert)

        def sni(sock, name, _ctx):
            sock.fc_sni = name
        ctx.sni_callback = sni
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                peer = self.connection.getpeercert() if client_ca else None
                subject = dict(x[0] for x in peer["subject"]) if peer else None
                origin.requests.append({
                    "path": self.path, "headers": dict(self.headers.items()),
                    "sni": getattr(self.connection, "fc_sni", None),
                    "client": subject.get("commonName") if subject else None,
                    "resumed": self.connection.session_reused})
                body = ("origin %s" % self.path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=60")
                if origin.close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address):
                request.settimeout(10)
                try:
                    tls = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    origin.failures.append(str(e))
                    return
                origin.connections += 1
                try:
                    Handler(tls, client_address, self)
                    tls.unwrap()    # close_notify
                except (OSError, ValueError):
                    pass
                finally:
                    tls.close()

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class OriginTest(H.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        need_programs()
        super().setUpClass()

    def tls_origin(self, cert=None, **kw):
        o = TLSOrigin(cert or pki.origin, **kw)
        self.addCleanup(o.stop)
        return o

    def proxy_for(self, origin_url, tls=None, workers=2):
        over = {"origin": {"url": origin_url}, "workers": workers}
        if tls is not None:
            over["origin"]["tls"] = tls
        return start_proxy(self, over)

    def fetch(self, p, path, timeout=10.0):
        return H.request(p.port, "GET", path, timeout=timeout)

    def test_unknown_ca(self):
        o = self.tls_origin(pki.stranger)
        p = self.proxy_for("https://localhost:%d" % o.port)       # the system's CAs
        r = self.fetch(p, "/a")
        self.assertEqual(r.status, 502, r)
        self.assertIn("warning: origin TLS: certificate verify failed: unable to get local "
                      "issuer certificate", log_text(p))
        self.assertEqual(o.requests, [])
        # with the test CA, not the one that signed it: the same
        p = self.proxy_for("https://localhost:%d" % o.port, {"ca_file": pki.ca.cert})
        self.assertEqual(self.fetch(p, "/b").status, 502)
        self.assertIn("origin TLS: certificate verify failed: unable to get local issuer "
                      "certificate", log_text(p))
        self.assertEqual(o.requests, [])

    def test_wrong_name(self):
        o = self.tls_origin()
        p = self.proxy_for("https://localhost:%d" % o.port,
                           {"ca_file": pki.ca.cert, "server_name": "wrong.test"})
        r = self.fetch(p, "/a")
        self.assertEqual(r.status, 502, r)
        self.assertIn("origin TLS: certificate verify failed: hostname mismatch", log_text(p))
        # an IP address in the URL is checked as one: the certificate has
        # no IP address
        p = self.proxy_for("https://127.0.0.1:%d" % o.port, {"ca_file": pki.ca.cert})
        self.assertEqual(self.fetch(p, "/b").status, 502)
        self.assertIn("origin TLS: certificate verify failed: IP address mismatch", log_text(p))
        self.assertEqual(o.requests, [])

    def test_right_ca_and_name(self):
        o = self.tls_origin()
        p = self.proxy_for("https://localhost:%d" % o.port, {"ca_file": pki.ca.cert}, workers=1)
        r = self.fetch(p, "/stored")
        self.assertEqual((r.status, r.body), (200, b"origin /stored"), r)
        self.assertEqual(r.cache_status.get("fwd"), "miss")
        self.assertTrue(r.cache_status.get("stored"), r)
        r = self.fetch(p, "/stored")
        self.assertEqual((r.status, r.body), (200, b"origin /stored"), r)
        self.assertHit(r)
        self.assertEqual([q["path"] for q in o.requests], ["/stored"])
        self.assertEqual(o.requests[0]["sni"], "localhost")
        self.assertEqual(o.requests[0]["headers"].get("X-Forwarded-Proto"), "http")
        # kept alive: more misses, one connection
        for i in range(5):
            self.assertEqual(self.fetch(p, "/k%d" % i).status, 200)
        self.assertEqual(o.connections, 1)
        self.assertEqual(o.failures, [])

    def test_server_name(self):
        o = self.tls_origin()
        p = self.proxy_for("https://127.0.0.1:%d" % o.port,
                           {"ca_file": pki.ca.cert, "server_name": "origin.test"})
        r = self.fetch(p, "/named")
        self.assertEqual((r.status, r.body), (200, b"origin /named"), r)
        self.assertEqual(o.requests[0]["sni"], "origin.test")
        # the Host header is still the client's
        self.assertEqual(o.requests[0]["headers"]["Host"], "127.0.0.1:%d" % p.port)

    def test_verify_false(self):
        o = self.tls_origin(pki.stranger)
        p = self.proxy_for("https://localhost:%d" % o.port, {"verify": False})
        warning = ("warning: origin.tls.verify is false: the origin's certificate is not "
                   "checked; anyone on the path to localhost can impersonate it")
        self.assertEqual(log_text(p).count(warning), 1, log_text(p))
        r = self.fetch(p, "/insecure")
        self.assertEqual((r.status, r.body), (200, b"origin /insecure"), r)
        # at every reload too
        os.kill(p.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while log_text(p).count(warning) < 2:
            self.assertLess(time.monotonic(), deadline, log_text(p))
            time.sleep(0.05)
        self.assertEqual(log_text(p).count(warning), 2)
        self.assertHit(self.fetch(p, "/insecure"))

    def test_mutual_tls(self):
        o = self.tls_origin(client_ca=pki.ca)
        p = self.proxy_for("https://localhost:%d" % o.port,
                           {"ca_file": pki.ca.cert, "certificate": pki.client.cert,
                            "key": pki.client.key})
        r = self.fetch(p, "/mtls")
        self.assertEqual((r.status, r.body), (200, b"origin /mtls"), r)
        self.assertEqual(o.requests[0]["client"], "freshcache client")
        self.assertHit(self.fetch(p, "/mtls"))
        self.assertEqual(o.failures, [])

    def test_mutual_tls_without_a_client_certificate(self):
        """Refused by the origin: a 502.

        Regression: with TLS 1.3 the client's handshake is over before the
        origin has checked the certificate; the origin then closes, and the
        request's write fails at once (ECONNRESET).  send_request() ignored
        that failure and no event was left armed: the request hung (and the
        daemon's drain with it)."""
        o = self.tls_origin(client_ca=pki.ca)
        p = self.proxy_for("https://localhost:%d" % o.port, {"ca_file": pki.ca.cert})
        got = []
        # a race (is the origin's reset in before the request is written?):
        # it hangs about every other time here
        for i in range(8):
            try:
                got.append(self.fetch(p, "/no-cert-%d" % i, timeout=3).status)
            except (AssertionError, H.NoResponse, OSError) as e:
                got.append(str(e)[:60])
        self.assertEqual(o.requests, [])
        # the origin's thread records its failed handshake after it closed
        # the socket, which may be after the proxy's 502 is out
        deadline = time.monotonic() + 3
        while len(o.failures) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(len(o.failures), 8, o.failures)
        for f in o.failures:
            self.assertIn("PEER_DID_NOT_RETURN_A_CERTIFICATE", f)
        self.assertEqual(got, [502] * 8)

    def test_origin_silent_after_connect(self):
        """An origin that accepts the connection and never answers the
        ClientHello: a 504 after origin.connect_timeout (1s here)."""
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(8)
            p = self.proxy_for("https://localhost:%d" % srv.getsockname()[1],
                               {"ca_file": pki.ca.cert})
            t0 = time.monotonic()
            r = self.fetch(p, "/silent", timeout=10)
            elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertGreater(elapsed, 0.9)
        self.assertLess(elapsed, 3.0)

    def test_sessions_resumed_when_reconnecting(self):
        o = self.tls_origin(close=True)
        p = self.proxy_for("https://localhost:%d" % o.port, {"ca_file": pki.ca.cert}, workers=1)
        for i in range(5):
            r = self.fetch(p, "/r%d" % i)
            self.assertEqual((r.status, r.body), (200, b"origin /r%d" % i), r)
        self.assertEqual(o.connections, 5)
        self.assertEqual([q["resumed"] for q in o.requests], [False, True, True, True, True])

    def test_verify_over_https(self):
        """POST /verify asks an https:// origin over TLS, checked like a
        fetch (the configured CA and name), and compares its answer with
        the stored copy.  Regression: it used a plain TCP socket."""
        o = self.tls_origin()
        p = self.proxy_for("https://localhost:%d" % o.port, {"ca_file": pki.ca.cert}, workers=1)
        self.assertEqual(self.fetch(p, "/v").status, 200)
        st, doc = p.admin("POST", "/verify", {"urls": ["/v", "/not-stored"]})
        self.assertEqual(st, 200, doc)
        r0, r1 = doc["results"]
        want = hashlib.sha256(b"origin /v").hexdigest()
        self.assertEqual((r0["origin_status"], r0["origin_sha256"], r0["proxy_sha256"]),
                         (200, want, want), r0)
        self.assertIs(r0["stale"], False, r0)
        self.assertEqual((r1["origin_status"], r1["proxy_sha256"]), (200, ""), r1)
        self.assertEqual(r1["origin_sha256"], hashlib.sha256(b"origin /not-stored").hexdigest())
        self.assertEqual(doc["stale"], 0, doc)
        # the fetch first, then verify's two in parallel (either order)
        self.assertEqual(o.requests[0]["path"], "/v")
        self.assertEqual(sorted(q["path"] for q in o.requests[1:]), ["/not-stored", "/v"])
        self.assertEqual({q["sni"] for q in o.requests}, {"localhost"})
        self.assertEqual(o.failures, [])
        # an origin whose certificate does not verify: an error, never a
        # comparison against bytes from an unchecked peer
        bad = self.tls_origin(pki.stranger)
        p = self.proxy_for("https://localhost:%d" % bad.port, {"ca_file": pki.ca.cert})
        st, doc = p.admin("POST", "/verify", {"urls": ["/x"]})
        self.assertEqual(st, 200, doc)
        r0 = doc["results"][0]
        self.assertEqual((r0["origin_sha256"], r0["origin_status"]), ("", 0), doc)
        self.assertIn("certificate verify failed", r0["error"], r0)
        self.assertEqual(bad.requests, [])
        self.assertIn("verify /x: certificate verify failed", log_text(p))


if __name__ == "__main__":
    H.main()
