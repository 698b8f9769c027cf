#!/usr/bin/env python3
"""Run the http-cache-tests conformance suite (npm http-cache-tests@0.4.5)
against freshcached and compare the outcome with expectations.txt.

    tests/conformance/run.py [--freshcached build/freshcached]
    tests/conformance/run.py --id freshness-max-age     # one test, dumped
    tests/conformance/run.py --base http://127.0.0.1:8081 --origin-port 8000
                                                         # another proxy

What it does:
  1. installs the pinned suite from npm into a cache directory outside the
     source tree, ${XDG_CACHE_HOME:-~/.cache}/freshcache/http-cache-tests-0.4.5
     (FRESHCACHE_CONFORMANCE_CACHE overrides it), reused when present;
  2. starts the suite's test server on 127.0.0.1 (suite.mjs server);
  3. starts freshcached in front of it with freshcache.yaml.in filled in
     (free ports, a temporary directory for the admin socket, state and logs);
  4. runs every test (suite.mjs client) through the proxy;
  5. prints a summary by group and lists what differs from expectations.txt.

Exit status: 0 when every test that does not pass is listed in
expectations.txt; 1 when an unlisted test does not pass, when the suite
cannot be installed (npm registry unreachable) or when a server fails;
2 on a usage error.  Every server it starts is stopped, on failure too.

Outcomes follow the suite's own classification (lib/display.mjs,
determineTestResult): a test of kind `required` that fails is a required
failure, `optimal` an optional failure, `check` a "no"; a failed assertion
the test marks as setup is a setup failure; a test whose depends_on tests do
not pass is a dependency failure; an exception is a harness failure.
"passed" counts required and optimal tests that pass (dependencies included);
checks are counted apart as yes/no.  That is how the peers' rows in the
issue were counted (peers/run-peer.sh gives the issue's figures for Traffic
Server, Squid, HAProxy and Varnish, and nginx within one test).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SUITE_NAME = 'http-cache-tests'
SUITE_VERSION = '0.4.5'
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUITE_MJS = os.path.join(HERE, 'suite.mjs')
CONFIG_TEMPLATE = os.path.join(HERE, 'freshcache.yaml.in')
DEFAULT_EXPECTATIONS = os.path.join(HERE, 'expectations.txt')

# Outcome names, in the order the summary shows them.
PASS, FAIL, OPTIONAL, NO, SETUP, DEPEND, HARNESS, RETRY, UNTESTED = (
    'pass', 'fail', 'optional_fail', 'no', 'setup_fail', 'dependency_fail',
    'harness_fail', 'retry', 'untested')
PASSING = (PASS, 'yes')
LABEL = {
    'yes': 'passed (check: yes)',
    PASS: 'passed',
    FAIL: 'required failure',
    OPTIONAL: 'optional failure',
    NO: 'check: no',
    SETUP: 'setup failure',
    DEPEND: 'dependency failure',
    HARNESS: 'harness failure',
    RETRY: 'retried request',
    UNTESTED: 'not run',
}


def log(msg):
    print(f'conformance: {msg}', file=sys.stderr, flush=True)


class Failure(Exception):
    """A fatal problem with a message for the user (exit 1)."""


class Terminated(BaseException):
    pass


def on_signal(signum, _frame):
    raise Terminated(signum)


# --------------------------------------------------------------------------
# Installing the suite

def cache_dir(args):
    if args.cache_dir:
        return os.path.abspath(args.cache_dir)
    env = os.environ.get('FRESHCACHE_CONFORMANCE_CACHE')
    if env:
        return os.path.abspath(env)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'freshcache', f'{SUITE_NAME}-{SUITE_VERSION}')


def installed(prefix):
    pkg = os.path.join(prefix, 'node_modules', SUITE_NAME)
    try:
        with open(os.path.join(pkg, 'package.json')) as f:
            version = json.load(f).get('version')
    except (OSError, ValueError):
        return None
    if version != SUITE_VERSION:
        return None
    if not os.path.isfile(os.path.join(prefix, 'node_modules', 'node-fetch', 'package.json')):
        return None
    return pkg


def ensure_suite(args):
    prefix = cache_dir(args)
    if os.path.commonpath([prefix, ROOT]) == ROOT:
        raise Failure(f'cache directory {prefix} is inside the source tree; '
                      'choose one outside it (FRESHCACHE_CONFORMANCE_CACHE)')
    pkg = installed(prefix)
    if pkg:
        return pkg
    npm = shutil.which('npm')
    if not npm:
        raise Failure('npm not found: the conformance test needs node and npm '
                      '(Debian: apt-get install nodejs npm)')
    parent = os.path.dirname(prefix)
    os.makedirs(parent, exist_ok=True)
    # Install beside the final place and rename, so an interrupted install
    # is never mistaken for a complete one.
    staging = tempfile.mkdtemp(prefix=os.path.basename(prefix) + '.tmp-', dir=parent)
    cmd = [npm, 'install', '--prefix', staging, f'{SUITE_NAME}@{SUITE_VERSION}',
           '--no-audit', '--no-fund', '--no-save', '--loglevel=error']
    log(f'installing {SUITE_NAME}@{SUITE_VERSION} into {prefix}')
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=args.npm_timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise Failure(f'`npm install {SUITE_NAME}@{SUITE_VERSION}` did not finish in '
                      f'{args.npm_timeout}s: is the npm registry reachable? '
                      'This test needs it (CI has registry access); it does not skip.')
    if proc.returncode != 0 or not installed(staging):
        shutil.rmtree(staging, ignore_errors=True)
        tail = '\n'.join(proc.stdout.strip().splitlines()[-15:])
        raise Failure(f'cannot install {SUITE_NAME}@{SUITE_VERSION} from the npm registry '
                      f'(npm exit {proc.returncode}). This test needs registry access '
                      f'(CI has it); it does not skip.\n--- npm output ---\n{tail}')
    if installed(prefix) is None:
        if os.path.exists(prefix):
            shutil.rmtree(prefix, ignore_errors=True)
        try:
            os.rename(staging, prefix)
        except OSError:
            pass  # another run won the race
    shutil.rmtree(staging, ignore_errors=True)
    pkg = installed(prefix)
    if not pkg:
        raise Failure(f'{SUITE_NAME}@{SUITE_VERSION} is not usable in {prefix} after install')
    return pkg


# --------------------------------------------------------------------------
# Processes

def _child_setup():
    # Die with the runner even if it is killed with SIGKILL (Linux).
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    def __init__(self, name, argv, logfile, cwd=None, env=None):
        self.name = name
        self.logfile = logfile
        self.out = open(logfile, 'wb')
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                  stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                  preexec_fn=_child_setup)

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=30):
        try:
            with open(self.logfile, errors='replace') as f:
                lines = f.read().splitlines()
        except OSError:
            return ''
        return '\n'.join(lines[-n:])

    def stop(self, timeout=5):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            except ProcessLookupError:
                pass
        self.out.close()
        return self.p.returncode


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(pred, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and not proc.alive():
            raise Failure(f'{proc.name} exited ({proc.p.returncode}) before {what}:\n{proc.tail()}')
        time.sleep(0.05)
    raise Failure(f'timed out after {timeout}s waiting for {what}'
                  + (f':\n{proc.tail()}' if proc else ''))


def port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_forwarding(base, timeout=15):
    """With --base: wait until a request through the proxy reaches the test
    server.  A peer started before the test server may hold the origin for
    down: Squid probes its cache_peer when it starts and answers 502 until a
    later probe succeeds, and a 502 on the first test would turn every test
    that depends on it into a dependency failure.  The probe asks for the
    state of a uuid no test uses; the test server answers it with its own
    404, which no proxy makes up."""
    url = f'{base}/state/conformance-warmup-{os.getpid()}'
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last = ''
    while True:
        try:
            with opener.open(url, timeout=2) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError as e:
            status, body = None, str(e).encode()
        if status == 404 and body.startswith(b'State not found for'):
            return
        last = f'{status}: {body[:200]!r}'
        if time.monotonic() > deadline:
            raise Failure(f'{base} does not forward to the test server after {timeout}s '
                          f'(GET {url} -> {last})')
        time.sleep(0.2)


def node_bin():
    node = shutil.which('node') or shutil.which('nodejs')
    if not node:
        raise Failure('node not found: the conformance test needs node >= 14.8 and npm')
    return node


def start_origin(node, pkg, tmp, port):
    proc = Proc('test server', [node, SUITE_MJS, 'server', pkg, str(port)],
                os.path.join(tmp, 'origin.log'))
    found = {}

    def listening():
        try:
            with open(proc.logfile) as f:
                for line in f:
                    if line.startswith('Listening on http://127.0.0.1:'):
                        found['port'] = int(line.rsplit(':', 1)[1].strip().strip('/'))
                        return True
        except (OSError, ValueError):
            pass
        return False
    wait_for(listening, proc, 20, 'the test server to listen')
    return proc, found['port']


def start_freshcached(binary, tmp, origin_port, template_path, attempts=3):
    with open(template_path) as f:
        template = f.read()
    os.makedirs(os.path.join(tmp, 'state'), exist_ok=True)
    last = None
    for attempt in range(attempts):
        port = free_port()
        config = (template.replace('@PROXY_PORT@', str(port))
                  .replace('@ORIGIN_PORT@', str(origin_port))
                  .replace('@TMPDIR@', tmp))
        conf_path = os.path.join(tmp, 'freshcache.yaml')
        with open(conf_path, 'w') as f:
            f.write(config)
        check = subprocess.run([binary, '-t', '-c', conf_path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            raise Failure(f'freshcached rejects the conformance config {conf_path}:\n{check.stdout}')
        proc = Proc('freshcached', [binary, '-c', conf_path],
                    os.path.join(tmp, f'freshcached{"-" + str(attempt) if attempt else ""}.log'))
        try:
            wait_for(lambda: port_open(port), proc, 15, f'freshcached to listen on 127.0.0.1:{port}')
            return proc, port
        except Failure as e:
            last = e
            proc.stop()
    raise last


# --------------------------------------------------------------------------
# Results

def classify(meta, results):
    """Outcome per test id, as lib/display.mjs determineTestResult does."""
    by_id = {t['id']: t for t in meta}
    memo = {}

    def outcome(tid):
        if tid in memo:
            return memo[tid]
        memo[tid] = UNTESTED  # guards against dependency cycles
        test = by_id[tid]
        result = results.get(tid)
        if result is None:
            memo[tid] = UNTESTED
            return UNTESTED
        for dep in test['depends_on']:
            if dep in by_id and outcome(dep) not in PASSING:
                memo[tid] = DEPEND
                return DEPEND
        if isinstance(result, list) and result and result[0] == 'Setup':
            o = RETRY if len(result) > 1 and result[1] == 'retry' else SETUP
        elif result is not True and not (isinstance(result, list) and result and result[0] == 'Assertion'):
            o = HARNESS
        elif test['kind'] == 'required':
            o = PASS if result is True else FAIL
        elif test['kind'] == 'optimal':
            o = PASS if result is True else OPTIONAL
        elif test['kind'] == 'check':
            o = 'yes' if result is True else NO
        else:
            raise Failure(f'unknown test kind {test["kind"]} for {tid}')
        memo[tid] = o
        return o

    return {t['id']: outcome(t['id']) for t in meta}


def message(result):
    if result is True:
        return ''
    if isinstance(result, list):
        return ': '.join(str(x) for x in result)
    return str(result)


def summarize(meta, outcomes, results, out):
    cols = [('tests', None), ('passed', (PASS,)), ('req fail', (FAIL,)),
            ('opt fail', (OPTIONAL,)), ('check yes', ('yes',)), ('check no', (NO,)),
            ('setup', (SETUP, RETRY)), ('dep fail', (DEPEND,)), ('harness', (HARNESS, UNTESTED))]
    groups = []
    for t in meta:
        if t['suite'] not in [g[0] for g in groups]:
            groups.append((t['suite'], t['suite_name']))
    width = max(len(g[0]) for g in groups + [('TOTAL', '')])
    header = f'{"group":<{width}}  ' + '  '.join(f'{c[0]:>8}' for c in cols)
    print(header, file=out)
    print('-' * len(header), file=out)
    totals = [0] * len(cols)
    for gid, _name in groups:
        ids = [t['id'] for t in meta if t['suite'] == gid]
        row = []
        for i, (_label, kinds) in enumerate(cols):
            n = len(ids) if kinds is None else sum(1 for x in ids if outcomes[x] in kinds)
            row.append(n)
            totals[i] += n
        print(f'{gid:<{width}}  ' + '  '.join(f'{n:>8}' for n in row), file=out)
    print('-' * len(header), file=out)
    print(f'{"TOTAL":<{width}}  ' + '  '.join(f'{n:>8}' for n in totals), file=out)
    print(f'{totals[0]} tests run: {totals[1]} passed, {totals[2]} required failures, '
          f'{totals[3]} optional failures; checks: {totals[4]} yes, {totals[5]} no; '
          f'{totals[6]} setup failures, {totals[7]} dependency failures, '
          f'{totals[8]} harness failures', file=out)
    return dict(zip([c[0] for c in cols], totals))


def markdown(meta, outcomes, out):
    """The per-group table of docs/conformance.md."""
    kinds = [None, (PASS,), (FAIL,), (OPTIONAL,), ('yes',), (NO,), (SETUP, RETRY), (DEPEND,),
             (HARNESS, UNTESTED)]
    print('| group | tests | passed | req fail | opt fail | check yes / no | setup | dep fail | harness |', file=out)
    print('|---|--:|--:|--:|--:|--:|--:|--:|--:|', file=out)
    groups = []
    for t in meta:
        if t['suite'] not in groups:
            groups.append(t['suite'])
    totals = [0] * len(kinds)
    for g in groups + [None]:
        if g is None:
            n = totals
        else:
            ids = [t['id'] for t in meta if t['suite'] == g]
            n = [len(ids) if k is None else sum(1 for x in ids if outcomes[x] in k) for k in kinds]
            totals = [a + b for a, b in zip(totals, n)]
        name = '**total**' if g is None else f'`{g}`'
        b = '**' if g is None else ''
        print(f'| {name} | {n[0]} | {b}{n[1]}{b} | {b}{n[2]}{b} | {n[3]} | {n[4]} / {n[5]} | '
              f'{n[6]} | {n[7]} | {n[8]} |', file=out)


def read_expectations(path):
    """{test id: reason}; raises Failure on a malformed file."""
    exp = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                raise Failure(f'{path}:{lineno}: `{parts[0]}` needs a reason after the test id')
            if parts[0] in exp:
                raise Failure(f'{path}:{lineno}: {parts[0]} listed twice')
            exp[parts[0]] = parts[1].strip()
    return exp


def write_expectations(path, meta, outcomes, results, old):
    """Write every non-passing test, grouped by suite, keeping old reasons."""
    lines = [
        f'# Tests of {SUITE_NAME}@{SUITE_VERSION} that freshcache does not pass, one per',
        '# line: TEST-ID then a one-line reason.  run.py fails when a test that is',
        '# not listed here does not pass, and names listed tests that now pass so',
        '# they can be removed.  Outcome in brackets: fail = required test failed,',
        '# optional = optimal test failed, no = informational check answered no,',
        '# setup = a precondition of the test did not hold, dependency = a test it',
        '# depends on did not pass.',
    ]
    short = {FAIL: 'fail', OPTIONAL: 'optional', NO: 'no', SETUP: 'setup', RETRY: 'setup',
             DEPEND: 'dependency', HARNESS: 'harness', UNTESTED: 'not run'}
    suite = None
    for t in meta:
        o = outcomes[t['id']]
        if o in PASSING:
            continue
        if t['suite'] != suite:
            suite = t['suite']
            lines += ['', f'# --- {suite}: {t["suite_name"]}']
        reason = old.get(t['id'])
        if reason is None:
            reason = f'[{short[o]}] TODO: {message(results.get(t["id"]))}'
        lines.append(f'{t["id"]:<44} {reason}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--freshcached', default=os.environ.get('FRESHCACHED'),
                    help='daemon to test (default: $FRESHCACHED, else build/freshcached)')
    ap.add_argument('--base', help='test the proxy at this URL instead of starting freshcached '
                    '(it must forward to the test server; see --origin-port); the suite '
                    'starts once a request through it reaches the test server')
    ap.add_argument('--origin-port', type=int, default=0,
                    help='port for the test server (default: a free one)')
    ap.add_argument('--config-template', default=CONFIG_TEMPLATE,
                    help='freshcached config with @PROXY_PORT@, @ORIGIN_PORT@ and @TMPDIR@ '
                    'placeholders (default: %(default)s)')
    ap.add_argument('--id', help='run only this test and dump its requests and responses')
    ap.add_argument('--expectations', default=DEFAULT_EXPECTATIONS,
                    help='expectations file (default: %(default)s)')
    ap.add_argument('--no-expectations', action='store_true',
                    help='only print the summary; exit 0 unless something broke')
    ap.add_argument('--write-expectations', metavar='FILE',
                    help='write the non-passing tests to FILE, keeping reasons from --expectations')
    ap.add_argument('--json', metavar='FILE', help='write raw results and outcomes to FILE')
    ap.add_argument('--markdown', action='store_true',
                    help='also print the per-group table as Markdown (for docs/conformance.md)')
    ap.add_argument('--failures', action='store_true',
                    help='print every non-passing test with the suite\'s message')
    ap.add_argument('--cache-dir', help='where the suite is installed '
                    '(default: $FRESHCACHE_CONFORMANCE_CACHE or '
                    '${XDG_CACHE_HOME:-~/.cache}/freshcache/http-cache-tests-0.4.5)')
    ap.add_argument('--no-retry', action='store_true',
                    help='do not run unlisted failures a second time')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory (logs, config)')
    ap.add_argument('--timeout', type=int, default=100, help='seconds allowed for each pass of the suite (default 100)')
    ap.add_argument('--npm-timeout', type=int, default=120, help='seconds allowed for npm install')
    args = ap.parse_args()

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    procs = []
    tmp = tempfile.mkdtemp(prefix='freshcache-conformance-')
    status = 0
    try:
        node = node_bin()
        pkg = ensure_suite(args)
        meta_raw = subprocess.run([node, SUITE_MJS, 'list', pkg], stdout=subprocess.PIPE,
                                  check=True, timeout=60).stdout
        meta = [t for t in json.loads(meta_raw) if not t['browser_only']]

        binary = None
        if not args.base:
            binary = args.freshcached or os.path.join(ROOT, 'build', 'freshcached')
            if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
                raise Failure(f'no freshcached at {binary} (build it, or pass --freshcached / set FRESHCACHED)')
            binary = os.path.abspath(binary)

        origin, origin_port = start_origin(node, pkg, tmp, args.origin_port)
        procs.append(origin)
        if args.base:
            base = args.base.rstrip('/')
            proxy = None
            wait_forwarding(base)
        else:
            proxy, proxy_port = start_freshcached(binary, tmp, origin_port, args.config_template)
            procs.append(proxy)
            base = f'http://127.0.0.1:{proxy_port}'
        log(f'test server on 127.0.0.1:{origin_port}; suite runs against {base}; logs in {tmp}')

        def run_client(ids=None, dump=False, name='results.json'):
            out_file = os.path.join(tmp, name)
            argv = [node, SUITE_MJS, 'client', pkg, base, out_file]
            if dump:
                argv.append('--dump')
            if ids:
                argv.append(','.join(ids))
            try:
                client = subprocess.run(argv, stdout=None if dump else subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, timeout=args.timeout,
                                        preexec_fn=_child_setup)
            except subprocess.TimeoutExpired:
                raise Failure(f'the suite did not finish in {args.timeout}s'
                              + (f'\n--- freshcached log ---\n{proxy.tail()}' if proxy else ''))
            if client.returncode != 0 or not os.path.exists(out_file):
                raise Failure(f'the suite client failed (exit {client.returncode}):\n{client.stdout or ""}')
            if proxy is not None and not proxy.alive():
                raise Failure(f'freshcached died during the run (exit {proxy.p.returncode}):\n{proxy.tail()}')
            with open(out_file) as f:
                return json.load(f)

        started = time.monotonic()
        if args.id:
            run_client(args.id.split(','), dump=True)
            print('==== Test server log (requests as the origin saw them)')
            print(origin.tail(400))
            return 0
        results = run_client()

        old = {}
        if not args.no_expectations or args.write_expectations:
            if os.path.exists(args.expectations):
                old = read_expectations(args.expectations)
            elif not args.write_expectations:
                raise Failure(f'no expectations file {args.expectations}')

        # A test that fails against the expectations gets a second chance,
        # run on its own: timing (Age rounding, pauses under load) can make
        # a test fail once.  One that passes then is reported as flaky.
        outcomes = classify(meta, results)
        flaky = []
        if not args.no_expectations and not args.no_retry:
            suspects = [t['id'] for t in meta
                        if outcomes[t['id']] not in PASSING and t['id'] not in old]
            if suspects:
                log(f'{len(suspects)} unlisted tests did not pass; running them again')
                again = run_client(suspects, name='retry.json')
                for tid in suspects:
                    if again.get(tid) is True and results.get(tid) is not True:
                        flaky.append((tid, results.get(tid)))
                    if tid in again:
                        results[tid] = again[tid]
                outcomes = classify(meta, results)
        elapsed = time.monotonic() - started

        print(f'{SUITE_NAME}@{SUITE_VERSION} against {"freshcached" if proxy else base} '
              f'({elapsed:.0f}s)')
        totals = summarize(meta, outcomes, results, sys.stdout)

        if args.markdown:
            print()
            markdown(meta, outcomes, sys.stdout)

        if args.json:
            with open(args.json, 'w') as f:
                json.dump({'suite': f'{SUITE_NAME}@{SUITE_VERSION}', 'totals': totals,
                           'tests': {t['id']: {'suite': t['suite'], 'kind': t['kind'],
                                               'outcome': outcomes[t['id']],
                                               'result': results.get(t['id'])}
                                     for t in meta}}, f, indent=1)
                f.write('\n')

        failing = [t for t in meta if outcomes[t['id']] not in PASSING]
        if args.failures:
            print('\nTests that do not pass:')
            for t in failing:
                print(f'  {t["id"]} [{LABEL[outcomes[t["id"]]]}] {message(results.get(t["id"]))}')

        if args.write_expectations:
            write_expectations(args.write_expectations, meta, outcomes, results, old)
            log(f'wrote {len(failing)} non-passing tests to {args.write_expectations}')
        if args.no_expectations:
            return 0

        known = {t['id'] for t in meta}
        unknown = sorted(set(old) - known)
        unexpected = [t for t in failing if t['id'] not in old]
        now_pass = [t for t in meta if t['id'] in old and outcomes[t['id']] in PASSING
                    and not old[t['id']].lower().startswith('flaky')]
        rel = os.path.relpath(args.expectations)
        if unknown:
            print(f'\n{rel} lists ids that are not in the suite (remove them): ' + ', '.join(unknown))
        if flaky:
            print(f'\n{len(flaky)} tests failed once and passed when run again (flaky; not counted as failures):')
            for tid, first in flaky:
                print(f'  {tid}: first run: {message(first)}')
        if now_pass:
            print(f'\n{len(now_pass)} listed tests now pass; remove them from {rel}:')
            for t in now_pass:
                print(f'  {t["id"]}')
        if unexpected:
            print(f'\n{len(unexpected)} tests do not pass and are not listed in {rel}:')
            for t in unexpected:
                print(f'  {t["id"]} [{LABEL[outcomes[t["id"]]]}] {message(results.get(t["id"]))}')
            status = 1
        print(f'\nconformance: {"FAIL" if status else "OK"}: {totals["passed"]} passed, '
              f'{totals["req fail"]} required failures, {len(failing)} not passing '
              f'({len(failing) - len(unexpected)} listed, {len(unexpected)} unlisted), '
              f'{len(now_pass)} listed now pass, {len(flaky)} passed on retry')
        return status
    except Failure as e:
        log(f'ERROR: {e}')
        status = 1
        return status
    except Terminated as e:
        log(f'terminated by signal {e.args[0]}; stopping servers')
        status = 1
        return status
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for p in reversed(procs):
            p.stop()
        if args.keep or (status and procs):
            log(f'kept {tmp} (config and logs)')
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
