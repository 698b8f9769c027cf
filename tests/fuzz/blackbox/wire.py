"""wire.py — the two sides on sockets: the hostile client and the broken origin.

Both run in one asyncio event loop on raw non-blocking sockets (so a
connection can be half-closed, or reset with SO_LINGER 0, at any moment).
They only carry out plans made by gen.py; nothing random is drawn here.
"""

import asyncio
import collections
import errno
import random
import re
import socket

from gen import LINGER0, live_response, origin_plan


if hasattr(asyncio, "timeout"):          # Python >= 3.11: cheaper than wait_for
    def deadline(t):
        return asyncio.timeout(t)
else:                                     # pragma: no cover
    class deadline:                       # noqa: N801
        def __init__(self, t):
            self.t = t

        async def __aenter__(self):
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            self.h = loop.call_later(self.t, task.cancel)

        async def __aexit__(self, et, ev, tb):
            self.h.cancel()
            if et is asyncio.CancelledError:
                raise asyncio.TimeoutError
            return False


def reset_close(s):
    """Close with an RST instead of a FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    except OSError:
        pass
    s.close()


def quiet_close(s):
    try:
        s.close()
    except OSError:
        pass


# ---------------------------------------------------------------------------
# reading the proxy's responses


class Malformed(Exception):
    """The proxy sent something that is not HTTP/1.1 (an anomaly, reported
    but not a failure: the fuzzer's job is crashes)."""


_STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?\Z")
_TOKEN_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _parse_head(head):
    """head: bytes up to (not including) the blank line.  Returns (status,
    {lower name: [values]})."""
    lines = head.split(b"\r\n")
    m = _STATUS_RE.match(lines[0])
    if not m:
        raise Malformed("status line %r" % lines[0][:80])
    hs = collections.defaultdict(list)
    for ln in lines[1:]:
        name, colon, value = ln.partition(b":")
        if not colon or not _TOKEN_RE.match(name):
            raise Malformed("header line %r" % ln[:80])
        if b"\n" in value or b"\r" in value or b"\0" in value:
            raise Malformed("control byte in header %r" % ln[:80])
        hs[name.lower().decode("latin-1")].append(value.strip())
    return int(m.group(1)), hs


class ResponseReader:
    """Reads responses from `s` into a buffer; `budget` bytes in all (None:
    unlimited) — a mid-response leave stops when it is spent."""

    def __init__(self, s, loop, slow=0.0):
        self.s = s
        self.loop = loop
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.slow = slow
        self.received = 0
        self.budget = None
        self.last_close = None      # status of a response that said Connection: close

    async def fill(self, timeout):
        if self.eof:
            return False
        if self.budget is not None and self.received >= self.budget:
            return False
        if self.slow:
            await asyncio.sleep(self.slow)
        n = 4096 if self.slow else 262144
        if self.budget is not None:
            n = max(1, min(n, self.budget - self.received))
        try:
            async with deadline(timeout):
                data = await self.loop.sock_recv(self.s, n)
        except (TimeoutError, asyncio.TimeoutError):
            raise                   # an OSError subclass: not an EOF
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            return False
        except OSError:
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.received += len(data)
        self.buf += data
        return True

    async def _need(self, timeout):
        if not await self.fill(timeout):
            raise EOFError

    async def _line(self, timeout):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > 1 << 20:
                raise Malformed("line longer than 1 MiB")
            await self._need(timeout)

    async def _skip(self, n, timeout):
        while len(self.buf) < n:
            n -= len(self.buf)
            self.buf.clear()
            await self._need(timeout)
        del self.buf[:n]

    async def response(self, method, timeout):
        """One response (1xx skipped).  Returns (status, outcome) with outcome
        'ok' | 'truncated' (closed mid-response: legitimate when the origin
        failed) | 'eof' (nothing at all) | 'timeout' | 'budget' | 'upgrade'.
        Raises Malformed."""
        got_any = False
        try:
            while True:
                while True:
                    i = self.buf.find(b"\r\n\r\n")
                    if i >= 0:
                        break
                    if len(self.buf) > 1 << 20:
                        raise Malformed("response head longer than 1 MiB")
                    if self.buf:
                        got_any = True
                    await self._need(timeout)
                got_any = True
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                status, hs = _parse_head(head)
                if 100 <= status < 200 and status != 101:
                    continue
                break
            if status == 101:
                return status, "upgrade"
            if b"close" in b",".join(hs.get("connection", [])).lower():
                self.last_close = status
            te = b",".join(hs.get("transfer-encoding", [])).lower()
            cls = hs.get("content-length", [])
            if te and cls:
                raise Malformed("both Transfer-Encoding and Content-Length")
            if len(set(cls)) > 1 or (cls and not cls[0].isdigit()):
                raise Malformed("Content-Length %r" % cls)
            if method == "HEAD" or status in (204, 304):
                return status, "ok"     # no body, whatever the length fields say
            if te:
                if te.strip() != b"chunked":
                    raise Malformed("Transfer-Encoding %r" % te)
                while True:
                    line = await self._line(timeout)
                    size_s = line.split(b";")[0].strip()
                    if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_s):
                        raise Malformed("chunk size line %r" % line[:40])
                    size = int(size_s, 16)
                    if size == 0:
                        while await self._line(timeout):
                            pass
                        return status, "ok"
                    await self._skip(size, timeout)
                    if await self._line(timeout) != b"":
                        raise Malformed("chunk data not followed by CRLF")
            if cls:
                await self._skip(int(cls[0]), timeout)
                return status, "ok"
            while await self.fill(timeout):       # close-delimited
                self.buf.clear()
            self.buf.clear()
            if self.budget is not None and self.received >= self.budget:
                return status, "budget"
            return status, ("truncated" if self.reset else "ok")
        except EOFError:
            if self.budget is not None and self.received >= self.budget:
                return None, "budget"
            return None, ("truncated" if got_any else "eof")
        except (TimeoutError, asyncio.TimeoutError):
            return None, "timeout"


# ---------------------------------------------------------------------------
# the hostile client


class ClientStats:
    def __init__(self):
        self.outcomes = collections.Counter()
        self.statuses = collections.Counter()
        self.ends = collections.Counter()
        self.anomalies = collections.Counter()     # text -> count
        self.anomaly_conn = {}                     # text -> first conn
        self.n_anomalies = 0
        self.first_malformed = None                # (conn, text): a failure

    def anomaly(self, conn, text):
        self.n_anomalies += 1
        text = text[:100]
        self.anomalies[text] += 1
        self.anomaly_conn.setdefault(text, conn)


RESP_TIMEOUT = 8.0       # origin.read_timeout is 2s, connect 1s: generous under ASan
CLOSE_GRACE = 5.0        # after a response with Connection: close (client_timeout is 2s)


async def wait_closed(reader, t):
    """Read (and drop) until the proxy closes; False if it stays open t
    seconds with nothing sent, or t + 60 seconds in all.  The proxy may
    still be sending what it owes: a slow reader (0.2 s per 4 KiB) takes
    longer than t to drain a large response, and that is not the proxy
    holding the connection open."""
    loop = asyncio.get_running_loop()
    limit = loop.time() + t + 60
    end = loop.time() + t
    reader.budget = None
    try:
        while True:
            left = min(end, limit) - loop.time()
            if left <= 0:
                return False
            if not await reader.fill(left):
                return True
            reader.buf.clear()
            end = loop.time() + t
    except (TimeoutError, asyncio.TimeoutError):
        return False


async def _send(loop, s, data, timeout=10.0):
    async with deadline(timeout):
        await loop.sock_sendall(s, data)


async def _send_request(loop, s, rq, slow, rnd, reader):
    """Send one request: whole, in small pieces (slow), or head, a pause for
    a 100 Continue, then the body."""
    if slow:
        data = rq.data
        i = 0
        while i < len(data):
            n = rnd.choice((1, 3, 17, 200, 4000))
            await _send(loop, s, data[i:i + n])
            i += n
            await asyncio.sleep(rnd.choice((0, 0, 0.001, 0.005)))
        return
    if rq.expect100 and len(rq.parts) > 1:
        await _send(loop, s, rq.parts[0])
        # wait briefly for "100 Continue" (or a final answer); bytes stay in
        # the reader's buffer for the response reader
        try:
            async with deadline(rnd.choice((0.01, 0.1, 0.3))):
                while b"\r\n\r\n" not in reader.buf and await reader.fill(1.0):
                    pass
        except (TimeoutError, asyncio.TimeoutError):
            pass
        await _send(loop, s, b"".join(rq.parts[1:]))
        return
    await _send(loop, s, rq.data)


async def run_connection(plan, port, stats):
    """Carry out one ConnPlan against the proxy."""
    loop = asyncio.get_running_loop()
    rnd = random.Random(plan.split_seed)        # piece sizes of slow sends
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        async with deadline(5.0):
            await loop.sock_connect(s, ("127.0.0.1", port))
    except (OSError, TimeoutError, asyncio.TimeoutError) as e:
        quiet_close(s)
        stats.outcomes["connect-failed"] += 1
        return "connect failed: %r" % e
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = ResponseReader(s, loop, plan.slow_read)
    end = plan.end
    stats.ends[end] += 1
    closed = False
    try:
        for gi, group in enumerate(plan.groups):
            last = gi == len(plan.groups) - 1
            reqs = [plan.requests[i] for i in group]
            if last and end == "truncate":
                data = b"".join(rq.data for rq in reqs[:-1]) + reqs[-1].data[:plan.end_at]
                if data:
                    await _send(loop, s, data)
                how = plan.trunc_end
                if how == "fin":
                    s.close()
                    closed = True
                elif how == "rst":
                    reset_close(s)
                    closed = True
                elif how == "shut-wr":
                    s.shutdown(socket.SHUT_WR)
                    if not await wait_closed(reader, RESP_TIMEOUT + CLOSE_GRACE):
                        stats.anomaly(plan.conn, "not closed %.0fs after a truncated request "
                                      "and a half-close" % (RESP_TIMEOUT + CLOSE_GRACE))
                else:                                   # wait: the proxy times us out
                    if not await wait_closed(reader, CLOSE_GRACE):
                        stats.anomaly(plan.conn, "a truncated request was not timed out within "
                                      "%.0fs (client_timeout is 2s)" % CLOSE_GRACE)
                stats.outcomes["truncated-request"] += 1
                return None
            if plan.mode == "slow" or (len(reqs) == 1 and reqs[0].expect100):
                for rq in reqs:
                    await _send_request(loop, s, rq, plan.mode == "slow", rnd, reader)
            else:
                await _send(loop, s, b"".join(rq.data for rq in reqs))
            if last:
                if end == "fin-after-send":
                    s.close()
                    closed = True
                    return None
                if end == "rst-after-send":
                    reset_close(s)
                    closed = True
                    return None
                if end == "shut-wr":
                    s.shutdown(socket.SHUT_WR)
                if end == "rst-after-head":
                    try:
                        while b"\r\n\r\n" not in reader.buf and await reader.fill(RESP_TIMEOUT):
                            pass
                    except (TimeoutError, asyncio.TimeoutError):
                        pass
                    reset_close(s)
                    closed = True
                    return None
                if end in ("rst-mid-response", "fin-mid-response"):
                    reader.budget = reader.received + plan.end_at
            ok = True
            for rq in reqs:
                status, outcome = await reader.response(rq.method, RESP_TIMEOUT)
                stats.outcomes[outcome] += 1
                if status is not None:
                    stats.statuses[status] += 1
                if outcome == "timeout":
                    stats.anomaly(plan.conn, "no response within %.0fs to %s"
                                  % (RESP_TIMEOUT, rq.desc))
                if outcome != "ok":
                    ok = False
                    break
            if not ok:
                break
            if reader.last_close is not None:
                # the proxy said Connection: close: it must close, soon
                if not await wait_closed(reader, CLOSE_GRACE):
                    stats.anomaly(plan.conn, "still open %.0fs after a response with "
                                  "Connection: close (status %d)" % (CLOSE_GRACE, reader.last_close))
                break
            if last and end == "shut-wr":
                # all answered after our half-close: the proxy closes now
                if not await wait_closed(reader, CLOSE_GRACE):
                    stats.anomaly(plan.conn, "still open %.0fs after answering a half-closed "
                                  "connection" % CLOSE_GRACE)
        if end == "rst-mid-response":
            reset_close(s)
            closed = True
        elif end == "idle" and not reader.eof:
            # stay connected and silent: the proxy's client_timeout ends it
            if not await wait_closed(reader, CLOSE_GRACE):
                stats.anomaly(plan.conn, "an idle keep-alive connection was not closed within "
                              "%.0fs (client_timeout is 2s)" % CLOSE_GRACE)
    except Malformed as e:
        stats.outcomes["malformed"] += 1
        stats.anomaly(plan.conn, str(e))
        if stats.first_malformed is None:
            stats.first_malformed = (plan.conn, str(e)[:100])
    except (ConnectionError, BrokenPipeError):
        stats.outcomes["send-reset"] += 1
    except (TimeoutError, asyncio.TimeoutError):
        stats.outcomes["send-timeout"] += 1
    except OSError as e:
        if e.errno == errno.ENOTCONN:       # shutdown() after the proxy reset us
            stats.outcomes["send-reset"] += 1
        else:
            stats.outcomes["oserror"] += 1
            stats.anomaly(plan.conn, "OSError %r" % e)
    finally:
        if not closed:
            quiet_close(s)
    return None


async def probe(port, target, timeout=10.0):
    """A plain well-formed GET through the proxy.  Returns the status (int)
    or a string saying what went wrong."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        async with deadline(timeout):
            await loop.sock_connect(s, ("127.0.0.1", port))
            await loop.sock_sendall(s, b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                       b"Connection: close\r\n\r\n" % (target.encode(), port))
            reader = ResponseReader(s, loop)
            status, outcome = await reader.response("GET", timeout)
            if status is None:
                return "no response (%s)" % outcome
            return status
    except Malformed as e:
        return "malformed response: %s" % e
    except (OSError, TimeoutError, asyncio.TimeoutError) as e:
        return "%s" % (type(e).__name__ if not str(e) else e)
    finally:
        quiet_close(s)


async def admin_call(sock_path, method, target, body, leave, timeout=15.0):
    """One request on the admin socket.  Returns the status (int), 'left'
    when told to leave right after sending, or a string saying what went
    wrong."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, target)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    data = head.encode() + b"\r\n" + (body or b"")
    try:
        async with deadline(timeout):
            await loop.sock_connect(s, sock_path)
            await loop.sock_sendall(s, data)
            if leave == "fin":
                return "left"
            if leave == "rst":
                reset_close(s)
                s = None
                return "left"
            reader = ResponseReader(s, loop)
            status, outcome = await reader.response(method, timeout)
            return status if status is not None else "no response (%s)" % outcome
    except Malformed as e:
        return "malformed response: %s" % e
    except (OSError, TimeoutError, asyncio.TimeoutError) as e:
        return "%s" % (type(e).__name__ if not str(e) else e)
    finally:
        if s is not None:
            quiet_close(s)


# ---------------------------------------------------------------------------
# the broken origin


class Origin:
    def __init__(self, seed):
        self.seed = seed
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1024)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.fallback = 0
        self.key_arrivals = collections.Counter()
        self.requests = 0
        self.plans = collections.Counter()
        self.tasks = set()
        self.accept_task = None

    def start(self):
        self.accept_task = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self):
        loop = asyncio.get_running_loop()
        while True:
            try:
                s, _ = await loop.sock_accept(self.lsock)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = loop.create_task(self._serve(s))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def stop(self):
        if self.accept_task:
            self.accept_task.cancel()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.accept_task:
            await asyncio.gather(self.accept_task, return_exceptions=True)
        self.lsock.close()

    async def _read_until(self, loop, s, buf, pat, limit):
        while True:
            i = buf.find(pat)
            if i >= 0:
                return i
            if len(buf) > limit:
                return -1
            data = await loop.sock_recv(s, 262144)
            if not data:
                return -1
            buf += data

    async def _read_body(self, loop, s, buf, hs):
        """Consume the request body the proxy forwards.  False: give up."""
        te = hs.get("transfer-encoding", "").lower()
        if "chunked" in te:
            while True:
                i = await self._read_until(loop, s, buf, b"\r\n", 1 << 16)
                if i < 0:
                    return False
                try:
                    size = int(bytes(buf[:i]).split(b";")[0].strip(), 16)
                except ValueError:
                    return False
                del buf[:i + 2]
                if size == 0:
                    while True:             # trailers up to the empty line
                        i = await self._read_until(loop, s, buf, b"\r\n", 1 << 16)
                        if i < 0:
                            return False
                        line = bytes(buf[:i])
                        del buf[:i + 2]
                        if not line:
                            return True
                while len(buf) < size + 2:
                    data = await loop.sock_recv(s, 262144)
                    if not data:
                        return False
                    buf += data
                del buf[:size + 2]
        cl = hs.get("content-length")
        if cl:
            try:
                n = int(cl)
            except ValueError:
                return False
            while len(buf) < n:
                data = await loop.sock_recv(s, 262144)
                if not data:
                    return False
                buf += data
            del buf[:n]
        return True

    async def _serve(self, s):
        loop = asyncio.get_running_loop()
        buf = bytearray()
        end = "close"
        try:
            while True:
                i = await self._read_until(loop, s, buf, b"\r\n\r\n", 1 << 21)
                if i < 0:
                    return
                head = bytes(buf[:i])
                del buf[:i + 4]
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    return
                method = parts[0].decode("latin-1")
                target = parts[1]
                hs = {}
                for ln in lines[1:]:
                    k, _, v = ln.partition(b":")
                    hs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
                self.requests += 1
                if target.startswith(b"/live/"):
                    if not await self._read_body(loop, s, buf, hs):
                        return
                    await loop.sock_sendall(s, live_response())
                    continue
                m = re.match(rb"/fz/\d+/s/(\d+)", target)
                if m:
                    key = int(m.group(1))
                    arrival = self.key_arrivals[key]
                    self.key_arrivals[key] += 1
                else:
                    arrival = self.fallback
                    self.fallback += 1
                plan = origin_plan(self.seed, target, method, hs, arrival)
                self.plans[plan.desc.split(" ")[0]] += 1
                if not plan.early and not await self._read_body(loop, s, buf, hs):
                    return
                end = "close"
                for act in plan.actions:
                    if act[0] == "send":
                        await loop.sock_sendall(s, act[1])
                    elif act[0] == "sleep":
                        if act[1]:
                            await asyncio.sleep(act[1])
                    else:
                        end = act[0]
                if end != "keep" or plan.early:
                    return
        except (OSError, EOFError):
            end = "close"
        except asyncio.CancelledError:
            end = "close"
            raise
        finally:
            if end == "rst":
                reset_close(s)
            else:
                quiet_close(s)
