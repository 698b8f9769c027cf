#!/usr/bin/env python3
"""Early Hints: what a page load gains from freshcached's 103 (issue 14).

    bench/early_hints.py --freshcached build-bench/freshcached [--port-base P]
                         [--loads N] [--rtt-ms MS,...] [--keep]

(bench/run runs it as the `early-hints` scenario.)  An origin that takes
100 ms for its HTML page (`Cache-Control: no-cache`, so the proxy
revalidates it on every request: a 304 after 100 ms) and links four
hashed assets with `Link: <...>; rel=preload`; two freshcached in front of
it, identical but for the html policy's `early_hints` (true / false).  A
small client plays a browser: it asks for the page and fetches the linked
assets on connections it opened beforehand, as soon as it learns of them:
from the 103 when there is one, else from the final response.  Reported
per instance, median and 90th percentile over N loads:

- TTFB: the first byte of any answer (the 103 when sent);
- final: the head of the 200;
- last asset: the end of the last asset's body, from the start of the load;
- page + assets: the later of the page's head and the last asset.

--rtt-ms adds a modelled client round trip (each request reaches the
server RTT/2 after it is sent, each answer the client RTT/2 after the
server sent it; loopback has none), so the numbers show what the 103 saves
on a real network: about one round trip plus the assets' transfer.
Everything listens on 127.0.0.1; every process started is stopped.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HTML_DELAY = 0.100
N_ASSETS = 4
ASSET_SIZE = 32 * 1024
ASSETS = ["/assets/chunk%d.%08x.js" % (i, 0x1a2b3c40 + i) for i in range(N_ASSETS)]
PAGE = ("<!doctype html><title>bench</title>\n" +
        "".join('<script src="%s"></script>\n' % a for a in ASSETS)).encode()
LINKS = ", ".join("<%s>; rel=preload; as=script" % a for a in ASSETS)


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eh-origin"

    def do_GET(self):
        if self.path == "/page.html":
            time.sleep(HTML_DELAY)
            if self.headers.get("If-None-Match") == '"page-1"':
                self.send_response(304)
                self.send_header("ETag", '"page-1"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("ETag", '"page-1"')
            self.send_header("Link", LINKS)
            body = PAGE
        elif self.path in ASSETS:
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
            body = (self.path.encode() + b"\n") * (ASSET_SIZE // (len(self.path) + 1))
        else:
            self.send_response(404)
            body = b"not found\n"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


CONFIG = """listen:
  - address: 127.0.0.1:{port}
workers: 1
origin:
  url: http://127.0.0.1:{origin}
cache:
  memory: 64MiB
admin:
  socket: {dir}/admin.sock
state_dir: {dir}/state
log:
  access: off
  level: warn
policies:
  - name: hashed-assets
    match: {{ path: '[.-][0-9a-f]{{8,}}\\.js$' }}
    ttl: 365d
  - name: html
    match: {{ content_type: [text/html] }}
    ttl: 0s
    response_cache_control: "no-cache"
    early_hints: {hints}
  - name: default
    ttl: origin
"""


class Conn:
    """One keep-alive HTTP/1.1 connection, reading responses by hand (so a
    103 is seen the moment it arrives)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.s.close()

    def send_get(self, path):
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode())

    def head(self):
        """(status, {lower name: [values]}) of the next response head."""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        h, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = h.decode("latin-1").split("\r\n")
        fields = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            fields.setdefault(k.strip().lower(), []).append(v.strip())
        return int(lines[0].split()[1]), fields

    def body(self, fields):
        n = int(fields.get("content-length", ["0"])[0])
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed mid-body")
            self.buf += d
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def preloads(fields):
    return re.findall(r"<([^>]+)>\s*;[^,]*rel=\"?preload", ", ".join(fields.get("link", [])))


def one_load(port, pool, rtt):
    """Load the page and its assets; times in ms from the start."""
    half = rtt / 2
    t0 = time.monotonic()
    started, threads, ends = set(), [], []
    lock = threading.Lock()

    def fetch(c, path, at):
        # the request leaves `at`, reaches the server RTT/2 later; the
        # answer reaches the client RTT/2 after the server sent it
        time.sleep(max(0.0, at + half - time.monotonic()))
        c.send_get(path)
        st, f = c.head()
        c.body(f)
        if st != 200:
            raise RuntimeError("%s: %d" % (path, st))
        with lock:
            ends.append(time.monotonic() + half)

    def start(paths, at):
        for p in paths:
            if p not in started:
                c = pool[len(started)]
                started.add(p)
                t = threading.Thread(target=fetch, args=(c, p, at))
                t.start()
                threads.append(t)

    page = pool[-1]
    time.sleep(half)
    page.send_get("/page.html")
    first = None
    while True:
        st, f = page.head()
        seen = time.monotonic() + half
        if first is None:
            first = seen
        if st == 103:
            start(preloads(f), seen)
            continue
        break
    page.body(f)
    final = seen
    start(preloads(f), final)
    for t in threads:
        t.join()
    if st != 200 or len(started) != N_ASSETS:
        raise RuntimeError("page %d, %d assets" % (st, len(started)))
    ms = lambda t: (t - t0) * 1000.0  # noqa: E731
    return {"ttfb": ms(first), "final": ms(final), "last_asset": ms(max(ends)),
            "complete": ms(max(max(ends), final)), "hinted": first < final}


def measure(port, loads, rtt):
    pool = [Conn(port) for _ in range(N_ASSETS + 1)]
    try:
        one_load(port, pool, rtt)                # warm: page and assets stored
        runs = [one_load(port, pool, rtt) for _ in range(loads)]
    finally:
        for c in pool:
            c.close()
    out = {"hinted": sum(r["hinted"] for r in runs)}
    for k in ("ttfb", "final", "last_asset", "complete"):
        v = sorted(r[k] for r in runs)
        out[k] = {"median": statistics.median(v), "p90": v[int(len(v) * 0.9) - 1]}
    return out


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("freshcached exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not listening" % port)


def run(exe, port_base, loads, rtts, workdir):
    """Start the origin and both instances, measure, stop them.  Returns
    {"rtt_ms": {"on"/"off": figures}}."""
    origin = OriginServer(("127.0.0.1", port_base), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    procs = {}
    results = {}
    try:
        for i, hints in enumerate(("on", "off")):
            d = os.path.join(workdir, "eh-" + hints)
            os.makedirs(d, exist_ok=True)
            port = port_base + 1 + i
            with open(os.path.join(d, "freshcache.yaml"), "w") as f:
                f.write(CONFIG.format(port=port, origin=port_base, dir=d,
                                      hints="true" if hints == "on" else "false"))
            p = subprocess.Popen([exe, "-c", os.path.join(d, "freshcache.yaml")],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "wb"),
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            procs[hints] = (p, port)
            wait_port(port, p)
        for rtt in rtts:
            row = results.setdefault(str(rtt), {})
            for hints, (p, port) in procs.items():
                row[hints] = measure(port, loads, rtt / 1000.0)
    finally:
        for p, _ in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        origin.shutdown()
        origin.server_close()
    return results


def table(results, loads):
    lines = ["### Early Hints: page with %d preloaded assets, origin 100 ms for the HTML "
             "(%d loads each; median / p90, ms)" % (N_ASSETS, loads), "",
             "| client RTT | early_hints | 103s | TTFB | final head | last asset | page + assets |",
             "|---|---|---|---|---|---|---|"]
    for rtt, row in results.items():
        for hints in ("on", "off"):
            r = row[hints]
            lines.append("| %s ms | %s | %d/%d | %s |" % (
                rtt, hints, r["hinted"], loads, " | ".join(
                    "%.1f / %.1f" % (r[k]["median"], r[k]["p90"])
                    for k in ("ttfb", "final", "last_asset", "complete"))))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--freshcached", required=True)
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", 27100)) + 30)
    ap.add_argument("--loads", type=int, default=50)
    ap.add_argument("--rtt-ms", default="0,50", help="modelled client round trips, comma-separated")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    rtts = [float(x) for x in a.rtt_ms.split(",") if x]
    work = tempfile.mkdtemp(prefix="fc-bench-eh-")
    try:
        res = run(os.path.abspath(a.freshcached), a.port_base, a.loads, rtts, work)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(table(res, a.loads))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
