#!/usr/bin/env python3
"""A deliberately slow origin for the stampede scenario.

Answers every GET after DELAY seconds with a 1 KiB body and
`Cache-Control: max-age=3600`, HTTP/1.1 keep-alive, one thread per
connection (so a proxy that does not coalesce really sends every request
through).  The origin nginx proxies /slow/* here; requests are counted in
that nginx's access log.

    slow_origin.py PORT DELAY_SECONDS      (listens on 127.0.0.1 only)
"""
import http.server
import sys
import time

BODY = (b"slow-origin " * 100)[:1024]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slow-origin"

    def do_GET(self):
        time.sleep(DELAY)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Cache-Control", "max-age=3600")
        self.send_header("ETag", '"slow-1"')
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, fmt, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: slow_origin.py PORT DELAY_SECONDS")
    DELAY = float(sys.argv[2])
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
