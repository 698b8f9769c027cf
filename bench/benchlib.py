"""Shared plumbing for bench/run and bench/purge (Python 3 standard library).

Processes: every server is started in its own session (process group) and
stopped on exit, normal or not (SIGTERM to the group, SIGKILL after a grace
period).  Only 127.0.0.1 is used.  Every wait is bounded.
"""
import atexit
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PEERS = os.path.join(BENCH, "peers")
LUA = os.path.join(BENCH, "lua")
BUILD = os.path.join(ROOT, "build-bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def fail(msg):
    raise BenchError(msg)


# ---------------------------------------------------------------- processes

def _die_with_parent():
    """In the child before exec: get SIGTERM if the bench itself dies, even
    by SIGKILL (Linux PR_SET_PDEATHSIG), so no server outlives it."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)      # PR_SET_PDEATHSIG = 1
        if os.getppid() == 1:                       # the parent died already
            os._exit(1)
    except Exception:
        pass


class Procs:
    """The processes this bench started; stop_all() ends them by their id."""

    def __init__(self):
        self.procs = []     # (name, Popen)

    def start(self, name, argv, logpath, cpus=None, cwd=None, env=None):
        if cpus:
            argv = ["taskset", "-c", cpus] + list(argv)
        out = open(logpath, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 cwd=cwd, env=env, preexec_fn=_die_with_parent)
        except OSError as e:
            fail("cannot start %s (%s): %s" % (name, argv[0], e))
        finally:
            out.close()
        p.bench_name = name
        p.bench_log = logpath
        self.procs.append((name, p))
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        else:
            # The leader is gone; make sure nothing of its group lingers.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self):
        for _, p in reversed(list(self.procs)):
            try:
                self.stop(p)
            except Exception as e:      # keep stopping the others
                print("bench: stopping %s: %s" % (p.bench_name, e), file=sys.stderr)


PROCS = Procs()
_CHILD_WRK = []


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def install_cleanup():
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def cleanup():
    for p in list(_CHILD_WRK):
        if p.poll() is None:
            p.kill()
            p.wait()
    PROCS.stop_all()


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ------------------------------------------------------------------ network

def port_busy(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def check_ports_free(ports):
    busy = [p for p in ports if port_busy(p)]
    if busy:
        fail("127.0.0.1 port(s) %s already in use; pick another base with "
             "--port-base (or BENCH_PORT_BASE)" % ", ".join(map(str, busy)))


def wait_http(port, proc, what, path="/", timeout=20.0, tls=False):
    """Wait until 127.0.0.1:port answers an HTTP request (any status)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            fail("%s exited with status %s while starting; its log:\n%s"
                 % (what, proc.returncode, tail(proc.bench_log)))
        try:
            status, _, _ = http_get(port, path, timeout=2, tls=tls)
            return status
        except OSError as e:
            last = e
        time.sleep(0.1)
    fail("%s did not answer on 127.0.0.1:%d within %.0fs (%s); its log:\n%s"
         % (what, port, timeout, last, tail(proc.bench_log) if proc else ""))


def _insecure_context():
    # The bench's own self-signed certificate: encryption is what is
    # measured, not verification.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get(port, path, headers=None, timeout=10, tls=False):
    if tls:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                        context=_insecure_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def admin(sock, method, path, body=None, timeout=30):
    c = UnixHTTPConnection(sock, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            fail("admin %s %s: HTTP %d: %s" % (method, path, r.status, data[:200]))
        return json.loads(data)
    finally:
        c.close()


def wait_unix(path, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail("%s exited with status %s while starting; its log:\n%s"
                 % (what, proc.returncode, tail(proc.bench_log)))
        if os.path.exists(path):
            try:
                return admin(path, "GET", "/stats", timeout=2)
            except (OSError, BenchError):
                pass
        time.sleep(0.1)
    fail("%s: admin socket %s not answering within %.0fs" % (what, path, timeout))


# -------------------------------------------------------------------- /proc

def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(pid):
    """pid and all its live descendants (nginx workers, varnish's child)."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids):
    """{pid: utime+stime in clock ticks}; a process's figure covers all its threads."""
    out = {}
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[p] = int(fields[11]) + int(fields[12])
    return out


class CpuMeter:
    """CPU seconds used by a process tree between start() and stop()."""

    def __init__(self, root_pid):
        self.root = root_pid

    def start(self):
        self.before = cpu_ticks(proc_tree(self.root))

    def stop(self):
        after = cpu_ticks(proc_tree(self.root))
        ticks = sum(v - self.before.get(p, 0) for p, v in after.items())
        return ticks / CLK_TCK


def _sys_busy():
    with open("/proc/stat") as f:
        v = f.readline().split()
    # user + nice + system; irq/softirq are left out because the processes'
    # own utime+stime do not include them either.
    return (int(v[1]) + int(v[2]) + int(v[3])) / CLK_TCK


def _own_cpu():
    import resource
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


class LoadMeter:
    """CPU used on the whole machine by processes that are not ours.

    foreign = machine busy time - (the measured servers + wrk + this script),
    averaged over the wall time: 0.0 on a quiet machine, 1.0 when someone
    else keeps a whole core busy.  wrk's CPU is also reported (a client-bound
    run shows wrk near one core per thread)."""

    def start(self):
        self.t0 = time.monotonic()
        self.busy0 = _sys_busy()
        self.self0, self.kids0 = _own_cpu()

    def stop(self, servers_cpu):
        wall = time.monotonic() - self.t0
        busy = _sys_busy() - self.busy0
        self1, kids1 = _own_cpu()
        wrk = kids1 - self.kids0
        mine = self1 - self.self0
        foreign = busy - servers_cpu - wrk - mine
        return {"wall_s": wall, "wrk_cpu_s": wrk,
                "foreign_cores": max(0.0, foreign) / wall if wall > 0 else 0.0}


def _smaps_kib(root_pid, field):
    """The sum of smaps_rollup's `field` ("Pss:", "Rss:") over the tree."""
    total = 0
    for p in proc_tree(root_pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def pss_kib(root_pid):
    """Proportional set size of the process tree (shared pages split)."""
    return _smaps_kib(root_pid, "Pss:")


def rss_kib(root_pid):
    """Resident set size of the process tree (shared pages counted whole in
    each process, as ps and top show it)."""
    return _smaps_kib(root_pid, "Rss:")


def du_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    if not m:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    r = {"rps": None, "requests": 0, "p50": None, "p99": None, "non2xx": 0,
         "sockerr": 0, "sockerr_text": ""}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["sockerr"] = sum(int(x) for x in m.groups())
        r["sockerr_text"] = m.group(0)
    return r


def wrk_argv(port, path, conns, duration, script=None, cpus=None, timeout="5s", tls=False,
             headers=None):
    threads = 1 if conns == 1 else 2
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % max(1, round(float(duration))),
            "--latency", "--timeout", timeout]
    for h in headers or []:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append("%s://127.0.0.1:%d%s" % ("https" if tls else "http", port, path))
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    return argv, threads


def run_wrk(port, path, conns, duration, script=None, env=None, cpus=None,
            stop_when=None, poll=0.25, tls=False, headers=None):
    """Run wrk; returns the parsed figures plus 'raw'.  stop_when(): if given,
    polled while wrk runs; when it returns True wrk is stopped with SIGINT
    (wrk then prints its figures as usual).  -d is the upper bound.  tls:
    https:// (wrk's OpenSSL: TLS 1.2 at most, no verification)."""
    argv, threads = wrk_argv(port, path, conns, duration, script, cpus, tls=tls,
                             headers=headers)
    e = dict(os.environ)
    e["BENCH_THREADS"] = str(threads)
    if env:
        e.update(env)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=e, text=True)
    _CHILD_WRK.append(p)
    try:
        if stop_when is not None:
            while p.poll() is None:
                time.sleep(poll)
                if stop_when():
                    p.send_signal(signal.SIGINT)
                    break
        out, _ = p.communicate(timeout=float(duration) + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("wrk did not finish: %s" % " ".join(argv))
    finally:
        _CHILD_WRK.remove(p)
    if p.returncode not in (0, -signal.SIGINT):
        fail("wrk failed (%s): %s\n%s" % (p.returncode, " ".join(argv), out))
    r = parse_wrk(out)
    if r["rps"] is None:
        fail("could not read wrk's output:\n%s" % out)
    r["raw"] = out
    return r


# ------------------------------------------------------------------- origin

class AccessLog:
    """Counts origin requests from the origin nginx's access log
    (format: '$status $request_uri', buffered with flush=100ms)."""

    def __init__(self, path):
        self.path = path

    def size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def mark(self):
        time.sleep(0.15)        # let the workers' buffers flush (flush=100ms)
        return self.size()

    def since(self, mark, flush=True):
        if flush:
            time.sleep(0.25)
        with open(self.path, "rb") as f:
            f.seek(mark)
            data = f.read()
        counts = {"total": 0}
        uris = {}
        for line in data.splitlines():
            parts = line.split(b" ", 1)
            if len(parts) != 2:
                continue
            st = parts[0].decode()
            counts["total"] += 1
            counts[st] = counts.get(st, 0) + 1
            uris[parts[1]] = uris.get(parts[1], 0) + 1
        return counts, uris

    def count_prefix(self, mark, prefix):
        """Lines since mark whose URI starts with prefix (no flush wait)."""
        pb = prefix.encode()
        with open(self.path, "rb") as f:
            f.seek(mark)
            data = f.read()
        return sum(1 for line in data.splitlines()
                   if line.split(b" ", 1)[-1].startswith(pb))


def fill_template(name, dest, values):
    with open(os.path.join(PEERS, name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        fail("%s: unfilled placeholders %s" % (name, sorted(set(left))))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def user_line():
    # nginx switches its workers to `nobody` when started as root; the
    # temp dirs are ours, so keep the workers as the current user.
    return "user root root;" if os.geteuid() == 0 else ""


def make_workdir(keep=False):
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="freshcache-bench.", dir=base)
    os.chmod(d, 0o755)      # varnishd's unprivileged child reads its workdir
    if not keep:
        atexit.register(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def start_nginx(name, conf_name, workdir, values, cpus=None):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    vals = dict(values)
    vals.setdefault("DIR", d)
    vals.setdefault("USER", user_line())
    conf = fill_template(conf_name, os.path.join(d, "nginx.conf"), vals)
    t = subprocess.run(["nginx", "-t", "-q", "-c", conf, "-p", d + "/", "-e", "stderr"],
                       capture_output=True, text=True)
    if t.returncode != 0:
        fail("%s: nginx -t rejected %s:\n%s" % (name, conf, t.stderr))
    p = PROCS.start(name, ["nginx", "-c", conf, "-p", d + "/", "-e", "stderr"],
                    os.path.join(d, "stderr.log"), cpus=cpus)
    return p, d


def start_varnish(name, workdir, values, cpus=None, storage="malloc,256m"):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    vcl = fill_template("varnish.vcl", os.path.join(d, "bench.vcl"), values)
    os.chmod(vcl, 0o644)
    argv = ["varnishd", "-F", "-a", "127.0.0.1:%d" % values["PORT"], "-f", vcl,
            "-s", storage, "-n", os.path.join(d, "vsm"),
            "-T", "none"]
    # varnishd changes its credentials (its default jail), which clears the
    # parent-death signal; a small bash stays in between to pass it on.
    wrapper = ('trap \'kill -TERM "$c" 2>/dev/null; wait "$c"; exit 0\' TERM INT HUP; '
               '"$@" & c=$!; wait "$c"')
    argv = ["bash", "-c", wrapper, "varnishd-wrapper"] + argv
    p = PROCS.start(name, argv, os.path.join(d, "stderr.log"), cpus=cpus)
    return p, d


def start_freshcached(name, exe, workdir, values, cpus=None):
    d = os.path.join(workdir, name)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    vals = dict(values)
    vals.setdefault("DIR", d)
    vals.setdefault("TLS_LISTEN", "")
    vals.setdefault("EXTRA", "")
    vals.setdefault("AFTER_PURGE", "refetch")
    conf = fill_template("freshcache.yaml", os.path.join(d, "freshcache.yaml"), vals)
    t = subprocess.run([exe, "-t", "-c", conf], capture_output=True, text=True)
    if t.returncode != 0:
        fail("%s: freshcached -t rejected %s:\n%s%s" % (name, conf, t.stdout, t.stderr))
    p = PROCS.start(name, [exe, "-c", conf], os.path.join(d, "stderr.log"), cpus=cpus)
    p.admin_sock = os.path.join(d, "admin.sock")
    return p, d


# ---------------------------------------------------------------------- TLS

def make_certificate(workdir):
    """One self-signed ECDSA P-256 certificate (and key) for every TLS
    server of the run, valid for 30 days (no expiry warning); (cert path,
    key path)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=bench.test",
                        "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl req (the bench certificate) failed:\n%s" % r.stderr)
    os.chmod(key, 0o644)        # nginx's workers and freshcached read it
    return cert, key


def wrk_full_handshake_env(workdir):
    """An OpenSSL config for wrk that makes every connection a full
    handshake.  wrk keeps its SSL objects across reconnects (SSL_clear
    keeps the session), so with `Connection: close` it resumes every
    session by ticket.  A TLS 1.3 client cannot decline the server's
    tickets (they come after the handshake; `-SessionTicket` is a TLS 1.2
    option), so wrk is held to TLS 1.2, without the ticket extension, and
    with no session cache at either server every connection is a full
    handshake."""
    path = os.path.join(workdir, "tls", "wrk-openssl.cnf")
    with open(path, "w") as f:
        f.write("openssl_conf = openssl_init\n"
                "[openssl_init]\nssl_conf = ssl_sect\n"
                "[ssl_sect]\nsystem_default = system_default_sect\n"
                "[system_default_sect]\nOptions = -SessionTicket\n"
                "MaxProtocol = TLSv1.2\n")
    return {"OPENSSL_CONF": path}


def resumption_check(port):
    """What a client gets when it offers a saved session the way wrk does
    under wrk_full_handshake_env (TLS 1.2, no ticket extension): 'New' is
    a full handshake (also when the server gave no session ID, so there
    was nothing to offer), 'Reused' a resumption.  None if s_client
    failed."""
    with tempfile.TemporaryDirectory() as d:
        sess = os.path.join(d, "sess.pem")
        got = []
        for arg in ("-sess_out", "-sess_in"):
            if arg == "-sess_in" and not os.path.exists(sess):
                return "New"    # no session ID, no ticket: nothing to resume
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                "-tls1_2", "-no_ticket", arg, sess],
                               input=b"", capture_output=True, timeout=10)
            m = re.search(rb"^(New|Reused), ", r.stdout, re.M)
            if not m:
                return None
            got.append(m.group(1).decode())
        return got[1]


def resumption13_chain(port, n=4):
    """TLS 1.3 as wrk reconnects with `Connection: close`: each connection
    offers the session saved from the one before.  What each got ('New' or
    'Reused'; None where s_client failed).  A server that sends no new
    ticket after a resumption shows 'New' every other connection (a TLS 1.3
    client uses a ticket once)."""
    got = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
                    "-sess_out", os.path.join(d, "s%d.pem" % i), "-ign_eof"]
            if i and os.path.exists(os.path.join(d, "s%d.pem" % (i - 1))):
                argv += ["-sess_in", os.path.join(d, "s%d.pem" % (i - 1))]
            req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            r = subprocess.run(argv, input=req, capture_output=True, timeout=10)
            m = re.search(rb"^(New|Reused), ", r.stdout, re.M)
            got.append(m.group(1).decode() if m else None)
    return got


def idle_connections(port, n, tls, path, timeout=10):
    """Open `n` keep-alive connections, one request each (the whole
    response read), and return them open."""
    ctx = _insecure_context() if tls else None
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode()
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            if ctx:
                s = ctx.wrap_socket(s)
            socks.append(s)
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    fail("127.0.0.1:%d closed a connection before answering" % port)
                buf += d
            head, _, body = buf.partition(b"\r\n\r\n")
            m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
            if not head.startswith(b"HTTP/1.1 200") or not m:
                fail("127.0.0.1:%d: unexpected answer %r" % (port, head[:200]))
            while len(body) < int(m.group(1)):
                d = s.recv(65536)
                if not d:
                    fail("127.0.0.1:%d closed a connection mid-body" % port)
                body += d
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def admin_text(sock, path, timeout=30):
    """GET `path` on an admin socket: the body as text (e.g. /metrics)."""
    c = UnixHTTPConnection(sock, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            fail("admin GET %s: HTTP %d: %s" % (path, r.status, data[:200]))
        return data.decode("utf-8", "replace")
    finally:
        c.close()


def metric_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None
def start_redis(name, workdir, port, cpus=None):
    """A redis-server of the bench's own: loopback, no persistence, its own
    directory (never the system's instance on 6379)."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    exe = shutil.which("redis-server")
    if exe is None:
        fail("redis-server not found (apt-get install redis-server)")
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", d, "--daemonize", "no"]
    p = PROCS.start(name, argv, os.path.join(d, "redis.log"), cpus=cpus)
    deadline = time.monotonic() + 10
    while not port_busy(port):
        if p.poll() is not None or time.monotonic() > deadline:
            fail("%s did not start; its log:\n%s" % (name, tail(p.bench_log)))
        time.sleep(0.05)
    return p, d


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------- setup

def need_tools(tools):
    return [t for t in tools if shutil.which(t) is None]


def install_deps(skip):
    missing = need_tools(["wrk", "nginx", "varnishd", "taskset", "meson", "ninja", "openssl"])
    if skip:
        if missing:
            fail("missing tools %s (and --skip-deps given)" % ", ".join(missing))
        return
    # The repo's installer knows the build packages; --bench adds wrk,
    # nginx-light and varnish.  It runs apt-get update first, and only when
    # something is missing.
    log("checking Debian packages (scripts/install-deps --bench)")
    r = subprocess.run([os.path.join(ROOT, "scripts", "install-deps"), "--bench"],
                       stdout=sys.stderr)
    if r.returncode != 0:
        fail("installing packages failed (scripts/install-deps --bench, status %d)" % r.returncode)
    missing = need_tools(["wrk", "nginx", "varnishd", "taskset", "meson", "ninja", "openssl"])
    if missing:
        fail("still missing after install: %s" % ", ".join(missing))


def build(skip):
    exe = os.path.join(BUILD, "freshcached")
    ctl = os.path.join(BUILD, "proxyctl")
    if skip:
        if not (os.access(exe, os.X_OK) and os.access(ctl, os.X_OK)):
            fail("--skip-build given but %s is missing" % exe)
        return exe, ctl
    if not os.path.exists(os.path.join(BUILD, "meson-private", "coredata.dat")):
        log("meson setup build-bench (release, tests disabled)")
        r = subprocess.run(["meson", "setup", BUILD, "--buildtype=release", "-Dtests=disabled"],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            fail("meson setup failed:\n%s%s" % (r.stdout[-3000:], r.stderr[-3000:]))
    else:
        # Keep an existing build-bench in release mode whatever it was set up with.
        subprocess.run(["meson", "configure", BUILD, "--buildtype=release", "-Dtests=disabled"],
                       cwd=ROOT, capture_output=True, text=True)
    log("ninja -C build-bench")
    r = subprocess.run(["ninja", "-C", BUILD], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        fail("build failed:\n%s%s" % (r.stdout[-4000:], r.stderr[-2000:]))
    for f in (exe, ctl):
        if not os.access(f, os.X_OK):
            fail("build did not produce %s" % f)
    return exe, ctl


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = open("/proc/loadavg").read().split()[:3]
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "loadavg": " ".join(load), "memory_monitor": memory_monitor(),
            "meminfo_mib": meminfo_mib()}


def meminfo_mib():
    """MemTotal, MemAvailable and Shmem (tmpfs, /dev/shm) in MiB: memory
    other processes and files hold sets how hard the kernel's memory
    monitor works, and the tail with it (memory_monitor)."""
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable", "Shmem"):
                    out[key] = int(rest.split()[0]) // 1024
    except OSError:
        pass
    return out


def stale_workdirs():
    """Work directories of earlier runs left in /dev/shm (kept by --keep,
    or left by a run that was killed), with their size in MiB: tmpfs
    holds their files (nginx's cache, the content) in memory."""
    return [(d, du_bytes(d) >> 20) for d in sorted(glob.glob("/dev/shm/freshcache-bench.*"))]


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def memory_monitor():
    """What the kernel does to the memory of the processes measured: DAMON
    contexts running (kdamond samples pages' access bits at its sampling
    interval) and the transparent huge page mode.  On a guest with shadow
    page tables such sampling stalls a process in proportion to the memory
    it maps, every interval (docs/performance.md, "The tail at the same
    offered load"), which shows in p99.9, so the report states it."""
    root = "/sys/kernel/mm/damon/admin/kdamonds"
    damon = []
    for k in sorted(glob.glob(root + "/[0-9]*")):
        if _read(k + "/state") != "on":
            continue
        for c in sorted(glob.glob(k + "/contexts/[0-9]*")):
            sample = _read(c + "/monitoring_attrs/intervals/sample_us")
            actions = [_read(a) for a in sorted(glob.glob(c + "/schemes/[0-9]*/action"))]
            damon.append({"ops": _read(c + "/operations"),
                          "sample_ms": int(sample) / 1000 if sample else None,
                          "schemes": [a for a in actions if a]})
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    mode = re.search(r"\[(\w+)\]", thp).group(1) if thp and "[" in thp else None
    return {"damon": damon, "thp": mode}


def memory_monitor_text(m):
    """One sentence for the report's machine line."""
    if not m:
        return "not recorded"
    if m["damon"]:
        parts = ["DAMON %s sampling every %g ms%s" % (
            d["ops"], d["sample_ms"] or 0,
            " (schemes: %s)" % ", ".join(d["schemes"]) if d["schemes"] else "")
            for d in m["damon"]]
        text = "; ".join(parts)
    else:
        text = "no DAMON context running"
    return text + "; transparent huge pages: %s" % (m["thp"] or "?")


def versions(exe):
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            line = (r.stdout + r.stderr).strip().splitlines()[0]
            return line.split(" Copyright")[0].replace("nginx version: ", "")
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    v = {"nginx": first(["nginx", "-v"]), "varnish": first(["varnishd", "-V"]),
         "wrk": first(["wrk", "-v"])}
    if exe:
        v["freshcached"] = first([exe, "--version"])
        try:
            v["git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                      capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            v["git"] = "?"
    return v


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ HTTP/2
# (issue 11: h2-hit1k and h2-idle in bench/run)

def h2_certificate(workdir):
    """One self-signed ECDSA P-256 certificate (and key) for every HTTP/2
    server of the run, valid 30 days; (cert path, key path)."""
    d = os.path.join(workdir, "h2-cert")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=bench.test",
                        "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl req (the HTTP/2 bench certificate) failed:\n%s" % r.stderr)
    os.chmod(d, 0o755)
    os.chmod(key, 0o644)        # nginx's workers read it too
    return cert, key


def start_freshcached_h2(name, exe, workdir, values, cpus=None):
    """freshcached with bench/peers/freshcache-h2.yaml (a TLS listener)."""
    d = os.path.join(workdir, name)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    vals = dict(values)
    vals.setdefault("DIR", d)
    conf = fill_template("freshcache-h2.yaml", os.path.join(d, "freshcache.yaml"), vals)
    t = subprocess.run([exe, "-t", "-c", conf], capture_output=True, text=True)
    if t.returncode != 0:
        fail("%s: freshcached -t rejected %s:\n%s%s" % (name, conf, t.stdout, t.stderr))
    p = PROCS.start(name, [exe, "-c", conf], os.path.join(d, "stderr.log"), cpus=cpus)
    p.admin_sock = os.path.join(d, "admin.sock")
    return p, d


def https_get(port, path, timeout=10):
    """GET over TLS, HTTP/1.1 (no ALPN): (status, {header: value}, body)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def parse_h2load(out):
    r = {"rps": None, "requests": 0, "succeeded": 0, "failed": 0, "errored": 0, "timeout": 0,
         "non2xx": 0, "mean_ms": None, "max_ms": None, "protocol": None}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if m:
        r["requests"], r["succeeded"], r["failed"], r["errored"], r["timeout"] = \
            (int(x) for x in m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["non2xx"] = sum(int(x) for x in m.groups()[1:])
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["max_ms"] = _ms(m.group(2))
        r["mean_ms"] = _ms(m.group(3))
    m = re.search(r"Application protocol: (\S+)", out)
    if m:
        r["protocol"] = m.group(1)
    return r


def _h2load(argv, timeout, cpus):
    """Run h2load (`argv`) within `timeout` seconds; (parsed figures, its
    output, argv as run).  Fails the bench if it cannot run or errs."""
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True)
    _CHILD_WRK.append(p)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("h2load did not finish: %s" % " ".join(argv))
    finally:
        _CHILD_WRK.remove(p)
    r = parse_h2load(out)
    if p.returncode != 0 or r["rps"] is None:
        fail("h2load failed (%s): %s\n%s" % (p.returncode, " ".join(argv), out[-3000:]))
    return r, out, argv


def run_h2load(port, path, clients, streams, duration, threads=2, cpus=None):
    """h2load over TLS (ALPN h2): `clients` connections with `streams`
    concurrent streams each, for `duration` seconds."""
    argv = ["h2load", "-c%d" % clients, "-m%d" % streams, "-t%d" % threads,
            "-D%d" % max(1, round(float(duration))), "https://127.0.0.1:%d%s" % (port, path)]
    r, out, argv = _h2load(argv, float(duration) + 60, cpus)
    if r["protocol"] != "h2":
        fail("h2load did not negotiate h2 (%s): %s" % (r["protocol"], " ".join(argv)))
    r["raw"] = out
    return r


def run_h1_fixed_rate(port, path, conns, rate, duration, headers=None, cpus=None):
    """Open loop: h2load over HTTP/1.1 keep-alive sends `rate` requests a
    second in all over `conns` connections (--rps per connection) for
    `duration` seconds, whatever the answers' pace, and logs each
    request's time (--log-file).  wrk instead sends the next request when
    an answer arrives (closed loop), so at saturation the faster server
    is also offered more load; here every server gets the same.  Returns
    the h2load figures plus p50/p99/p99.9 in ms over the 2xx/3xx answers."""
    fd, log_path = tempfile.mkstemp(prefix="fixed-rate-", suffix=".log")
    os.close(fd)
    os.unlink(log_path)     # h2load appends: start from no file
    argv = ["h2load", "--h1", "-t%d" % min(2, conns), "-c%d" % conns, "--rps=%g" % (rate / conns),
            "-n%d" % int(rate * duration), "--log-file=" + log_path]
    for h in headers or []:
        argv += ["-H", h]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    times = []
    try:
        r, out, argv = _h2load(argv, float(duration) * 3 + 60, cpus)
        with open(log_path) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) >= 3 and cols[1] in ("200", "304"):
                    times.append(int(cols[2]))
    finally:
        if os.path.exists(log_path):
            os.unlink(log_path)
    if not times:
        fail("h2load answered nothing 200/304: %s\n%s" % (" ".join(argv), out[-3000:]))
    times.sort()

    def q(f):
        return times[min(len(times) - 1, int(f * len(times)))] / 1000.0
    r.update({"answered": len(times), "p50": q(0.50), "p99": q(0.99), "p999": q(0.999),
              "raw": out})
    return r


def _h2_frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def _hpack_literal(name, value):
    """A literal field without indexing, new name, no Huffman (RFC 7541
    §6.2.2); names and values here are under 127 bytes."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def h2_idle_connections(port, n, path, timeout=10):
    """Open `n` HTTP/2 connections over TLS (ALPN h2), one GET of `path`
    each (the whole response read, 200 checked), and return them open.
    A few lines of framing on the standard library: no client package."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    block = b"".join(_hpack_literal(k, v) for k, v in (
        (":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1:%d" % port),
        (":path", path)))
    hello = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0) +
             _h2_frame(1, 0x5, 1, block))         # SETTINGS; HEADERS END_STREAM|END_HEADERS
    socks = []
    try:
        for _ in range(n):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout))
            socks.append(s)
            if s.selected_alpn_protocol() != "h2":
                fail("127.0.0.1:%d: ALPN chose %r, not h2" % (port, s.selected_alpn_protocol()))
            s.sendall(hello)
            buf, status, done = b"", None, False
            while not done:
                d = s.recv(65536)
                if not d:
                    fail("127.0.0.1:%d closed an HTTP/2 connection before answering" % port)
                buf += d
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    ftype, flags = buf[3], buf[4]
                    sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                    payload, buf = buf[9:9 + length], buf[9 + length:]
                    if ftype == 4 and not flags & 1:            # SETTINGS: acknowledge
                        s.sendall(_h2_frame(4, 1, 0))
                    elif ftype == 1 and sid == 1:               # HEADERS
                        # skip one-byte dynamic table size updates (RFC 7541 §6.3)
                        block = payload.lstrip(bytes(range(0x20, 0x3f)))
                        status = 200 if block[:1] == b"\x88" else block[:1]
                        done = done or bool(flags & 1)
                    elif ftype == 0 and sid == 1:               # DATA
                        done = done or bool(flags & 1)
                    elif ftype in (3, 7):                       # RST_STREAM, GOAWAY
                        fail("127.0.0.1:%d: %s on an idle-connection request"
                             % (port, "RST_STREAM" if ftype == 3 else "GOAWAY"))
            if status != 200:
                fail("127.0.0.1:%d: HTTP/2 answer not 200 (first header byte %r)" % (port, status))
    except BaseException:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        raise
    return socks
