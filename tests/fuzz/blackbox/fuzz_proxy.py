#!/usr/bin/env python3
"""fuzz_proxy.py — two-sided black-box fuzzer for freshcached (issue 18, item 3).

Starts freshcached (an ASan+UBSan build by default) in a temporary directory
and plays both of its peers at once:

  * a hostile client: mutated, pipelined, half-closed, truncated and reset
    requests (see gen.py: request, conn_plan);
  * a broken origin: mutated responses — framing lies, 1xx, bad heads, early
    closes and resets, one write or many (see gen.py: origin_plan).

Inputs are deterministic by seed: connection i of seed S always sends the
same bytes, and the origin's answer to an exchange is derived from the token
in its request target (/fz/S/<conn>/<req>), so the set of inputs a seed
produces is fixed; only the interleaving depends on timing.

The daemon must stay up, keep answering a plain GET (checked every
--check-every exchanges and at the end), write no sanitizer report, and exit
0 on SIGTERM at the end (LeakSanitizer reports at exit).  Exit status: 0 all
seeds passed, 1 a failure, 2 usage or setup error.

  python3 tests/fuzz/blackbox/fuzz_proxy.py --exchanges 3000 --seed 1
  python3 tests/fuzz/blackbox/fuzz_proxy.py --exchanges 200000 --seeds 1,2,3,4
  python3 tests/fuzz/blackbox/fuzz_proxy.py --seed 3 --replay 812,815 --repeat 50
  python3 tests/fuzz/blackbox/fuzz_proxy.py --seed 3 --show 812

Python 3 standard library only.  See tests/fuzz/README.md.
"""

import argparse
import asyncio
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

import gen    # noqa: E402
import wire   # noqa: E402

REPORT_RE = re.compile(r"ERROR: AddressSanitizer|AddressSanitizer:DEADLYSIGNAL|runtime error:|"
                       r"LeakSanitizer|assertion failed|ERROR: ThreadSanitizer")

DRAIN = 2.0          # limits.drain_timeout in the config below


def config_yaml(port, origin_port, tmp, log_level, variant):
    return """\
# written by tests/fuzz/blackbox/fuzz_proxy.py
listen:
  - address: 127.0.0.1:{port}
workers: 2
origin:
  url: http://127.0.0.1:{oport}
  host_header: {host_header}
  connect_timeout: 1s
  read_timeout: 2s
cache:
  memory: 8MiB
  max_object_size: 256KiB
  etag: {etag}
  coalesce: {coalesce}
  after_purge: {after_purge}
admin:
  socket: {tmp}/admin.sock
state_dir: {tmp}/state
log:
  access: off
  level: {level}
limits:
  max_header_bytes: 16KiB
  client_timeout: 2s
  drain_timeout: {drain}s
policies:
  - name: assets
    match: {{ path: '[.-][0-9a-f]{{8,}}\\.js$' }}
    ttl: 365d
    response_cache_control: "public, max-age=31536000, immutable"
  - name: swr
    match: {{ path: '\\.swr$' }}
    ttl: 1s
    stale_while_revalidate: 30s
    stale_if_error: 60s
  - name: html
    match: {{ content_type: [text/html] }}
    ttl: 0s
    stale_if_error: 1h
    response_cache_control: "no-cache"
  - name: default
    ttl: origin
""".format(port=port, oport=origin_port, tmp=tmp, level=log_level, drain=int(DRAIN), **variant)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """freshcached with its output (stdout and stderr) in tmp/freshcached.log."""

    def __init__(self, path, tmp, origin_port, log_level, variant=None):
        self.path = path
        self.tmp = tmp
        self.log_path = os.path.join(tmp, "freshcached.log")
        self.config_path = os.path.join(tmp, "freshcache.yaml")
        self.origin_port = origin_port
        self.log_level = log_level
        self.variant = variant or gen.config_variant(1)
        self.proc = None
        self.scan_pos = 0
        self.report_at = None       # byte offset of the first sanitizer report
        os.makedirs(os.path.join(tmp, "state"), exist_ok=True)

    def start(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        # handle_abort=1: an abort() (ours or libevent's) or a SIGABRT from
        # outside gets a stack in the log instead of a silent death
        env.setdefault("ASAN_OPTIONS",
                       "halt_on_error=1:abort_on_error=1:detect_leaks=1:handle_abort=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        for attempt in range(3):    # a free port can be taken before the daemon binds it
            self.port = free_port()
            with open(self.config_path, "w") as f:
                f.write(config_yaml(self.port, self.origin_port, self.tmp, self.log_level,
                                    self.variant))
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen([self.path, "-c", self.config_path], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
            logf.close()
            err = self._wait_ready()
            if err is None:
                return
            self.kill()
            if attempt == 2 or "in use" not in self.tail(5):
                raise RuntimeError("%s\n--- freshcached output ---\n%s" % (err, self.tail(40)))

    def _wait_ready(self, timeout=15.0):
        end = time.monotonic() + timeout
        sock = os.path.join(self.tmp, "admin.sock")
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return "freshcached exited with status %s at start" % self.proc.returncode
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                if os.path.exists(sock):
                    return None
            except OSError:
                pass
            time.sleep(0.02)
        return "freshcached did not accept connections within %.0fs" % timeout

    def alive(self):
        return self.proc.poll() is None

    def scan(self):
        """True when the output holds a sanitizer or assertion report."""
        if self.report_at is not None:
            return True
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, self.scan_pos - 64))
                base = f.tell()
                data = f.read()
        except OSError:
            return False
        m = REPORT_RE.search(data.decode("latin-1"))
        if m:
            self.report_at = base + m.start()
            return True
        self.scan_pos = base + len(data)
        return False

    def tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def report(self, n=80):
        """The sanitizer report (from a few lines before its first line),
        else the log's tail."""
        if self.report_at is None and not self.scan():
            return self.tail(n)
        with open(self.log_path, "rb") as f:
            data = f.read().decode("latin-1")
        start = data.rfind("\n", 0, self.report_at) + 1      # the report's line
        lines = data[:start].splitlines()[-3:]
        for ln in data[start:].splitlines():
            if ln.startswith("Shadow bytes around"):    # ASan's shadow map: noise here
                lines.append("[... shadow map and the rest: see the log]")
                break
            lines.append(ln)
        return "\n".join(lines[:n])

    def status_text(self):
        rc = self.proc.returncode
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return "killed by %s" % signal.Signals(-rc).name
            except ValueError:
                return "killed by signal %d" % -rc
        return "exit status %d" % rc

    def stop(self, timeout):
        """SIGTERM; SIGKILL after `timeout`.  Returns False if it was needed."""
        if self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


class SeedRun:
    """One seed: one daemon, one origin, N exchanges."""

    def __init__(self, args, seed, exchanges, time_budget):
        self.args = args
        self.seed = seed
        self.target = exchanges
        self.budget = time_budget
        self.exchanges = 0
        self.failure = None
        self.stop = False
        self.in_flight = collections.OrderedDict()   # conn -> describe()
        self.recent = collections.deque(maxlen=24)  # conns finished last
        self.stats = wire.ClientStats()
        self.probes = 0
        self.probe_notes = collections.Counter()
        self.next_probe = args.check_every
        self.probe_task = None
        self.ops = collections.Counter()          # operator actions -> outcome
        self.n_ops = 0
        self.ops_running = 0
        self.ops_in_flight = {}                   # k -> description
        self.ops_recent = collections.deque(maxlen=8)
        self.next_op = (args.operator_every or float("inf")) if not args.replay else float("inf")
        self.elapsed = 0.0
        self.timed_out = False
        self.durations = collections.Counter()     # connection time buckets

    def fail(self, why):
        if self.failure is None:
            self.failure = why
            self.failed_in_flight = list(self.in_flight.items())
            self.failed_recent = list(self.recent)
            self.failed_ops = list(self.ops_in_flight.items()) + list(self.ops_recent)
        self.stop = True

    def conns(self):
        """The connection indexes to run, in order (None: 0, 1, 2, ...)."""
        if self.args.replay:
            for _ in range(self.args.repeat):
                for k in self.args.replay_ops:      # the round's operator actions
                    self.ops_running += 1
                    asyncio.get_running_loop().create_task(self.operator(k))
                for c in self.args.replay:
                    yield c
        else:
            c = 0
            while True:
                yield c
                c += 1

    async def worker(self, it, port, t_end):
        while not self.stop:
            if not self.args.replay and self.exchanges >= self.target:
                return
            if time.monotonic() >= t_end:
                self.timed_out = True
                return
            try:
                conn = next(it)
            except StopIteration:
                return
            if not self.daemon.alive():
                return              # the monitor reports it
            plan = gen.conn_plan(self.seed, conn, port)
            self.exchanges += len(plan.requests)
            if self.exchanges >= self.next_probe and self.probe_task is None:
                self.next_probe += self.args.check_every
                self.probe_task = asyncio.get_running_loop().create_task(self.liveness())
            if self.exchanges >= self.next_op and self.ops_running < 2:
                self.next_op += self.args.operator_every
                self.ops_running += 1
                asyncio.get_running_loop().create_task(self.operator(self.n_ops))
                self.n_ops += 1
            key = (conn, id(plan))
            self.in_flight[key] = plan.describe()
            t0 = time.monotonic()
            try:
                async with wire.deadline(40.0):
                    note = await wire.run_connection(plan, port, self.stats)
            except (TimeoutError, asyncio.TimeoutError):
                note = "connection still busy after 40s"
            finally:
                self.in_flight.pop(key, None)
            self.recent.append((conn, plan.describe()))
            dt = time.monotonic() - t0
            self.durations[next(b for b in ("<0.1s", "<1s", "<3s", "<10s", ">=10s")
                                if b == ">=10s" or dt < float(b[1:-1]))] += 1
            if dt >= 5 and self.args.verbose:
                print("seed %s conn %d: took %.1fs (%s)" % (self.seed, conn, dt, plan.describe()),
                      flush=True)
            if note and self.args.verbose:
                print("seed %s conn %d: %s" % (self.seed, conn, note), flush=True)

    async def liveness(self, final=False):
        try:
            for attempt in range(2):
                self.probes += 1
                st = await wire.probe(self.daemon.port, "/live/%s/%d/%d"
                                      % (self.seed, self.probes, attempt))
                if isinstance(st, int):
                    if st != 200:
                        self.probe_notes[st] += 1
                    return True
                self.probe_notes[st] += 1
                if not self.daemon.alive():
                    return False    # the monitor reports it
                await asyncio.sleep(1.0)
            self.fail("stopped answering: a plain GET through the proxy got no response twice "
                      "(%s)" % st)
            return False
        finally:
            if not final:
                self.probe_task = None

    async def operator(self, k):
        """The k-th operator action (gen.operator_action): admin socket calls
        and signals during the traffic.  Their answers are counted, not
        checked: the daemon staying up is what matters."""
        act = gen.operator_action(self.seed, k)
        desc = describe_op(act)
        self.ops_in_flight[k] = desc
        try:
            if act[0] == "signal":
                if self.daemon.alive():
                    self.daemon.proc.send_signal(getattr(signal, act[1]))
                self.ops[act[1]] += 1
                return
            _, method, target, body, leave = act
            st = await wire.admin_call(os.path.join(self.tmp, "admin.sock"), method, target,
                                       body, leave)
            self.ops["%s %s -> %s" % (method, target, st if isinstance(st, (int, str)) and
                                      len(str(st)) < 40 else "error")] += 1
        finally:
            self.ops_running -= 1
            self.ops_in_flight.pop(k, None)
            self.ops_recent.append((k, desc))

    async def monitor(self):
        n = 0
        while not self.stop:
            await asyncio.sleep(0.1)
            n += 1
            if not self.daemon.alive():
                self.daemon.scan()
                why = "freshcached died (%s)" % self.daemon.status_text()
                if self.daemon.proc.returncode == 0 and "received SIGTERM" in self.daemon.tail(5):
                    why += ": a SIGTERM from outside the fuzzer"
                self.fail(why)
                return
            if n % 5 == 0 and self.daemon.scan():
                self.fail("freshcached wrote a sanitizer/assertion report")
                return

    async def main(self):
        t_start = time.monotonic()
        t_end = t_start + self.budget
        self.origin.start()
        port = self.daemon.port
        it = self.conns()
        workers = [asyncio.get_running_loop().create_task(self.worker(it, port, t_end))
                   for _ in range(self.args.concurrency)]
        mon = asyncio.get_running_loop().create_task(self.monitor())
        pending = set(workers)
        while pending and not self.stop:
            done, pending = await asyncio.wait(pending, timeout=0.2)
            if time.monotonic() > t_end + 1.0:
                self.timed_out = True
                break               # the time is up: cut what is in flight short
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self.elapsed = time.monotonic() - t_start
        if self.probe_task is not None:
            await asyncio.gather(self.probe_task, return_exceptions=True)
        t_ops = time.monotonic() + 20
        while self.ops_running and not self.stop and time.monotonic() < t_ops:
            await asyncio.sleep(0.05)           # operator actions still running
        if not self.stop:
            # the end: the daemon must still answer
            await asyncio.sleep(0.2)
            if self.daemon.alive():
                await self.liveness(final=True)
        self.stop = True
        await asyncio.gather(mon, return_exceptions=True)
        if self.failure is None and not self.daemon.alive():
            self.fail("freshcached died (%s)" % self.daemon.status_text())
        await self.origin.stop()

    def run(self):
        self.tmp = tempfile.mkdtemp(prefix="fc-fuzz-%s-" % self.seed)
        self.origin = wire.Origin(self.seed)
        self.daemon = Daemon(self.args.daemon, self.tmp, self.origin.port, self.args.log_level,
                             gen.config_variant(self.seed))
        _live_daemons.append(self.daemon)
        _tmpdirs.append(self.tmp)
        try:
            self.daemon.start()
        except RuntimeError as e:
            self.fail("could not start freshcached: %s" % e)
            self.failed_in_flight = []
            return
        asyncio.run(self.main())
        if self.daemon.alive():
            if not self.daemon.stop(DRAIN + 15):
                self.fail("freshcached ignored SIGTERM for %.0fs and was killed" % (DRAIN + 15))
            elif self.daemon.proc.returncode != 0:
                self.daemon.scan()
                self.fail("freshcached %s after SIGTERM" % self.daemon.status_text())
        if self.daemon.scan() and self.failure is None:
            self.fail("freshcached wrote a sanitizer/assertion report")
        # Whatever the origin sent, the client must get HTTP/1.1: a status
        # line, header lines and framing a parser accepts (an origin's
        # "HTTP/1.1 0 X" was once relayed as it came).
        if self.failure is None and self.stats.first_malformed:
            conn, text = self.stats.first_malformed
            self.fail("the proxy sent malformed HTTP/1.1 %d time(s); first on conn %d: %s"
                      % (self.stats.outcomes["malformed"], conn, text))
        _live_daemons.remove(self.daemon)


_live_daemons = []
_tmpdirs = []


def _on_signal(signum, frame):
    for d in list(_live_daemons):
        d.kill()
    for t in _tmpdirs:
        shutil.rmtree(t, ignore_errors=True)
    sys.stderr.write("fuzz_proxy: terminated by signal %d\n" % signum)
    os._exit(128 + signum)


def describe_op(act):
    if act[0] == "signal":
        return act[1]
    _, method, target, body, leave = act
    return "%s %s %s%s" % (method, target, (body or b"")[:80].decode("latin-1"),
                           "" if leave == "no" else " (then leaves: %s)" % leave)


def parse_ints(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def show(seed, conn, port=8080):
    """Print the bytes of one connection and the origin's scripted answers."""
    p = gen.conn_plan(seed, conn, port)
    print(p.describe())
    print("groups (each sent in one write unless mode is slow): %s" % p.groups)
    if p.end == "truncate":
        print("last request truncated after %d bytes, then %s" % (p.end_at, p.trunc_end))
    for i, rq in enumerate(p.requests):
        print("--- request %d: %s%s" % (i, rq.desc, " [expect 100-continue]" if rq.expect100 else ""))
        print("    scenario: %s" % gen.scenario(seed, conn, i))
        d = rq.data
        print("    %d bytes: %r%s" % (len(d), d[:600], " ..." if len(d) > 600 else ""))
        m = re.match(rb"\S+ (\S+)", d)
        if m:
            target = m.group(1)
            mt = re.search(rb"/fz/.*", target)
            target = mt.group(0) if mt else target
            for method in sorted({rq.method, "GET"}):
                op = gen.origin_plan(seed, target, method, {}, 0)
                print("    origin answer to %s %r: %s" % (method, target[:60], op.desc))
                for a in op.actions:
                    if a[0] == "send":
                        print("      send %d bytes: %r%s" % (len(a[1]), a[1][:300],
                                                             " ..." if len(a[1]) > 300 else ""))
                    else:
                        print("      %s" % " ".join(str(x) for x in a))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Two-sided black-box fuzzer for freshcached (hostile client + broken origin).",
        epilog="Exit status: 0 passed, 1 a seed failed, 2 usage/setup error.")
    ap.add_argument("--daemon", default=os.environ.get("FRESHCACHED") or
                    os.path.join(REPO, "build-asan", "freshcached"),
                    help="freshcached binary (default: $FRESHCACHED or build-asan/freshcached)")
    ap.add_argument("--seed", type=int, action="append", default=[],
                    help="a seed (repeatable)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds or ranges, e.g. 1,2,5-8")
    ap.add_argument("--exchanges", type=int, default=3000,
                    help="client requests to attempt, in total, split evenly over the seeds "
                         "(default 3000)")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="connections in flight at once (default 32)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="stop after this many seconds in all (split over the seeds); "
                         "reaching it is not a failure (default: none)")
    ap.add_argument("--check-every", type=int, default=300,
                    help="liveness check every N exchanges (default 300)")
    ap.add_argument("--operator-every", type=int, default=150, metavar="N",
                    help="an operator action (admin purge / generation bump / verify / reload, "
                         "SIGHUP) every N exchanges; 0: none (default 150)")
    ap.add_argument("--replay", default="",
                    help="run only these connection indexes (comma list / ranges) of the seed")
    ap.add_argument("--replay-ops", default="", metavar="OPS",
                    help="with --replay: also these operator actions (indexes), each round")
    ap.add_argument("--repeat", type=int, default=1, help="with --replay: run them N times")
    ap.add_argument("--show", type=int, default=None, metavar="CONN",
                    help="print connection CONN's bytes and the origin's answers, and exit")
    ap.add_argument("--log-level", default="info", choices=("error", "warn", "info", "debug"),
                    help="the daemon's log.level (default info: a few lines per run)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)

    seeds = list(args.seed) + parse_ints(args.seeds)
    if not seeds:
        seeds = [1]
    if args.show is not None:
        for s in seeds:
            show(s, args.show)
        return 0
    args.replay = parse_ints(args.replay)
    args.replay_ops = parse_ints(args.replay_ops)
    if args.replay_ops and not args.replay:
        ap.error("--replay-ops goes with --replay")
    if args.replay and len(seeds) != 1:
        ap.error("--replay needs exactly one seed")
    if not os.access(args.daemon, os.X_OK):
        sys.stderr.write("fuzz_proxy: no executable daemon at %s (build it, or pass --daemon)\n"
                         % args.daemon)
        return 2
    args.daemon = os.path.abspath(args.daemon)
    if args.concurrency < 1 or args.exchanges < 1:
        ap.error("--concurrency and --exchanges must be positive")

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    t0 = time.monotonic()
    results = []
    total = 0
    for i, seed in enumerate(seeds):
        left = len(seeds) - i
        n = (args.exchanges - sum(r.target for r in results)) // left
        if args.time_limit > 0:
            budget = max(1.0, (args.time_limit - (time.monotonic() - t0)) / left)
        else:
            budget = float("inf")
        run = SeedRun(args, seed, n, budget)
        run.run()
        results.append(run)
        total += run.exchanges
        rate = run.exchanges / run.elapsed if run.elapsed else 0
        line = "seed %s: %d exchanges in %.1fs (%.0f/s)%s, %s" % (
            seed, run.exchanges, run.elapsed, rate,
            " [time limit]" if run.timed_out else "",
            "FAIL: " + run.failure if run.failure else "ok")
        print(line, flush=True)
        if args.verbose or run.failure:
            st = run.stats
            print("  config: %s" % " ".join("%s=%s" % kv for kv in run.daemon.variant.items()))
            print("  client outcomes: %s" % dict(st.outcomes.most_common()))
            print("  client ends: %s" % dict(st.ends.most_common()))
            print("  statuses: %s" % dict(sorted(st.statuses.items())))
            print("  origin: %d requests; plans %s" % (run.origin.requests,
                                                       dict(run.origin.plans.most_common())))
            print("  connection times: %s" % dict(sorted(run.durations.items())))
            print("  operator: %s" % dict(run.ops.most_common()))
            print("  liveness probes: %d%s" % (run.probes, (", notes %s" % dict(run.probe_notes))
                                                if run.probe_notes else ""))
        if st_anomalies(run):
            print("  anomalies in the proxy's responses: %d (not failures), e.g.:"
                  % run.stats.n_anomalies)
            for text, k in run.stats.anomalies.most_common(12 if args.verbose else 4):
                print("    %dx %s (first: conn %d)" % (k, text, run.stats.anomaly_conn[text]))
        if run.failure:
            report_failure(args, run, n)
        elif not args.keep:
            shutil.rmtree(run.tmp, ignore_errors=True)
    elapsed = time.monotonic() - t0
    failures = [r for r in results if r.failure]
    print("fuzz-blackbox: seeds %s, exchanges %d, time %.1fs (%.0f/s), failures %d%s" % (
        ",".join(str(s) for s in seeds), total, elapsed, total / elapsed if elapsed else 0,
        len(failures),
        "" if not failures else " (seed%s %s)" % ("s" if len(failures) > 1 else "",
                                                  ",".join(str(r.seed) for r in failures))),
        flush=True)
    return 1 if failures else 0


def st_anomalies(run):
    return run.stats.n_anomalies > 0


def report_failure(args, run, n):
    d = run.daemon
    rel = os.path.relpath(os.path.join(HERE, "fuzz_proxy.py"), REPO)
    print()
    print("=" * 72)
    print("FAILURE, seed %s, after %d exchanges (%.1fs): %s" % (run.seed, run.exchanges,
                                                               run.elapsed, run.failure))
    print("--- freshcached output (%s) ---" % d.log_path)
    print(d.report() or "(none)")
    inflight = getattr(run, "failed_in_flight", [])
    if inflight:
        print("--- connections in flight at the failure (oldest first) ---")
        for (conn, _), desc in inflight[-40:]:
            print("  " + desc)
    recent = getattr(run, "failed_recent", [])
    if recent:
        print("--- connections finished just before (a client that left early is "
              "among these) ---")
        for _, desc in recent[-16:]:
            print("  " + desc)
    # the suspects: what was in flight and what had just finished
    ops = getattr(run, "failed_ops", [])
    if ops:
        print("--- operator actions in flight or just done ---")
        for k, desc in ops:
            print("  op %d: %s" % (k, desc))
    conns = sorted({c for (c, _), _ in inflight[-24:]} | {c for c, _ in recent[-16:]})
    print("--- reproduce (from the source root) ---")
    print("  python3 %s --daemon %s --seed %s --exchanges %d" % (rel, d.path, run.seed, n))
    if conns:
        print("  python3 %s --daemon %s --seed %s --replay %s%s --repeat 20" % (
            rel, d.path, run.seed, ",".join(str(c) for c in conns),
            " --replay-ops %s" % ",".join(str(k) for k, _ in ops) if ops else ""))
        print("  python3 %s --seed %s --show CONN     # the bytes of one connection"
              % (rel, run.seed))
    print("  (kept %s)" % run.tmp)
    print("=" * 72, flush=True)


if __name__ == "__main__":
    sys.exit(main())
