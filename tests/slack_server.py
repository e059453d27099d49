"""A local HTTP server speaking the Slack Web API methods the notifier uses, with failures on demand."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TOKEN = "xoxb-test-0000-secret-token"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Call:
    """One request the server received."""

    method: str  # Slack method ("chat.postMessage"), or "upload" for a file's bytes
    params: dict[str, Any]  # form fields, query string and JSON body merged
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    """What the server does instead of answering: `kind` is ratelimited, server_error, drop or a Slack error code."""

    kind: str
    retry_after: int = 0


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False


@dataclass
class SlackState:
    """Everything the fake workspace holds; tests read and change it directly."""

    token: str = TOKEN
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # e-mail -> user id
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel id, ts) -> message
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes
    files: list[dict[str, Any]] = field(default_factory=list)  # completed uploads, with channel and thread
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    down: bool = False  # every request has its connection dropped: Slack unreachable
    delay_s: float = 0.0  # added to chat.postMessage, to widen race windows


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped connection is the point of the "drop" fault, not a failure of the server


class SlackServer:
    """A real ThreadingHTTPServer on 127.0.0.1; `base_url` is what SLACK_API_URL would be."""

    def __init__(self) -> None:
        self.state = SlackState()
        self._lock = threading.Lock()
        self._ts = itertools.count(100)
        self._ids = itertools.count(1)
        self.httpd = QuietServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.add_channel("alerts", "C0ALERTS")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.url + "/api/"

    def start(self) -> SlackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------ set-up by tests

    def add_channel(self, name: str, channel_id: str | None = None, *, member: bool = True) -> str:
        channel_id = channel_id or f"C{next(self._ids):07d}"
        self.state.channels[channel_id] = Channel(channel_id, name, member)
        return channel_id

    def add_user(self, email: str, user_id: str) -> None:
        self.state.users[email] = user_id

    def fail(self, method: str, kind: str, *, times: int = 1, retry_after: int = 0) -> None:
        """The next `times` calls of `method` fail with `kind` (ratelimited, server_error, drop, or an error code)."""
        self.state.faults.setdefault(method, []).extend(Fault(kind, retry_after) for _ in range(times))

    # ------------------------------------------------------------ what tests read

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.state.calls if c.method == method]

    def top_level(self) -> list[dict[str, Any]]:
        """Messages posted to a channel (not in a thread), oldest first."""
        return [m for m in self.state.messages.values() if not m.get("thread_ts")]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.state.messages.values() if m.get("thread_ts") == ts]

    # ------------------------------------------------------------ the API

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _channel(self, ref: str | None) -> Channel | None:
        for channel in self.state.channels.values():
            if ref in (channel.id, channel.name, "#" + channel.name):
                return channel
        return None

    def api(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(params)

    def api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "anomaly-monitor"}

    def _writable(self, ref: str | None) -> tuple[Channel | None, dict[str, Any] | None]:
        channel = self._channel(ref)
        if channel is None:
            return None, {"ok": False, "error": "channel_not_found"}
        if channel.archived:
            return None, {"ok": False, "error": "is_archived"}
        if not channel.member:
            return None, {"ok": False, "error": "not_in_channel"}
        return channel, None

    def api_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.state.delay_s)
        channel, error = self._writable(params.get("channel"))
        if error:
            return error
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts")
        if thread_ts and (channel.id, thread_ts) not in self.state.messages:
            return {"ok": False, "error": "thread_not_found"}
        ts = self._next_ts()
        message = {"type": "message", "ts": ts, "text": params.get("text", ""), "blocks": params.get("blocks", [])}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.state.messages[(channel.id, ts)] = {**message, "channel": channel.id, "updates": 0}
        return {"ok": True, "channel": channel.id, "ts": ts, "message": message}

    def api_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (params.get("channel"), params.get("ts"))
        if self._channel(key[0]) is None:
            return {"ok": False, "error": "channel_not_found"}
        if key not in self.state.messages:
            return {"ok": False, "error": "message_not_found"}
        stored = self.state.messages[key]
        stored.update(text=params.get("text", ""), blocks=params.get("blocks", []), updates=stored["updates"] + 1)
        return {"ok": True, "channel": key[0], "ts": key[1], "text": stored["text"]}

    def api_users_lookupByEmail(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = self.state.users.get(params.get("email", ""))
        if user_id is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": {"id": user_id, "profile": {"email": params["email"]}}}

    def api_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not params.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):07d}"
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def api_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(params.get("files") or "[]")
        if not files or any(f.get("id") not in self.state.uploads for f in files):
            return {"ok": False, "error": "file_not_found"}
        channel_id = params.get("channel_id")
        if channel_id:
            _, error = self._writable(channel_id)
            if error:
                return error
        done = [{"id": f["id"], "title": f.get("title"), "name": f["id"]} for f in files]
        self.state.files += [{**f, "channel": channel_id, "thread_ts": params.get("thread_ts")} for f in done]
        return {"ok": True, "files": done}

    # ------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path)
                method = path.path.removeprefix("/api/") if path.path.startswith("/api/") else "upload"
                params = dict(parse_qsl(path.query))
                if method != "upload":  # file bytes, whatever Content-Type urllib gave them
                    params.update(parse_body(self.headers.get("Content-Type", ""), body))
                with server._lock:
                    server.state.calls.append(Call(method, params, dict(self.headers.items()), body))
                    fault = server._take_fault(method)
                if fault is not None:
                    self._fault(fault)
                    return
                if method == "upload":
                    server.state.uploads[path.path.rsplit("/", 1)[-1]] = body
                    self._send(200, f"OK - {len(body)}".encode(), "text/plain")
                    return
                if self.headers.get("Authorization") != f"Bearer {server.state.token}":
                    self._json({"ok": False, "error": "invalid_auth"})
                    return
                with server._lock:
                    answer = server.api(method, params)
                self._json(answer)

            def _fault(self, fault: Fault) -> None:
                if fault.kind == "drop":
                    self.close_connection = True
                    self.connection.close()  # no status line at all: the client sees a dropped connection
                elif fault.kind == "ratelimited":
                    body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                    self._send(429, body, "application/json", {"Retry-After": str(fault.retry_after)})
                elif fault.kind == "server_error":
                    self._send(500, b'{"ok": false, "error": "internal_error"}', "application/json")
                else:
                    self._json({"ok": False, "error": fault.kind})

            def _json(self, answer: dict[str, Any]) -> None:
                self._send(200, json.dumps(answer).encode(), "application/json; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _take_fault(self, method: str) -> Fault | None:
        if self.state.down:
            return Fault("drop")
        queue = self.state.faults.get(method)
        return queue.pop(0) if queue else None


def parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(body)
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode()))
    return {}


@contextmanager
def serving() -> Iterator[SlackServer]:
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    """For a conftest.py to share; test modules here define a `slack` fixture over `serving()`."""
    with serving() as server:
        yield server
