"""A reverse proxy on a free loopback port that forwards every request to a local server and keeps a list of them.

Put between the product and an emulator, it shows what went over the wire (how many table checks, which
jobs) without touching either side. With `delay_s` it also holds every request that long before forwarding it,
as a distant server would (benchmarks/bench_parallel.py).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class RecordingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Forward)
        self.target = urlsplit(target)
        self.delay_s = delay_s
        self.requests: list[tuple[str, str]] = []  # (method, path with query), in arrival order
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, method: str, path_prefix: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and p.split("?")[0].startswith(path_prefix))


class Forward(BaseHTTPRequestHandler):
    server: RecordingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def forward(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.server.delay_s)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(self.server.target.hostname, self.server.target.port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward


@contextmanager
def recording(target: str, delay_s: float = 0.0) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(target, delay_s)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
