"""A local HTTP server speaking the Slack Web API methods the notifier uses, with failures on demand.

It misbehaves the way real networks and Slack do: rate limits (on demand, or enforced per channel like Slack's
one message a second), 5xx before or after acting, connections dropped before or after acting, answers slower
than the client's timeout, requests held until a test releases them (to kill the client meanwhile), errors
that echo the request's headers, deleted messages, missing scopes, and a whole outage (connections refused).
It keeps a record of every message it holds and every call it received: tests assert from that record.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TOKEN = "xoxb-test-0000-secret-token"
RESPONSE_PATH = "/actions/"  # a click's response_url points here, as Slack's hooks.slack.com/actions/... does
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WRITES = ("chat.postMessage", "chat.update")  # what Slack paces per channel
SCOPES = {
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "conversations.list": "channels:read",
}
PRIVATE_SCOPES = {"channels:history": "groups:history", "channels:read": "groups:read"}


@dataclass
class Call:
    """One request the server received."""

    method: str  # Slack method ("chat.postMessage"), or "upload" for a file's bytes
    params: dict[str, Any]  # form fields, query string and JSON body merged
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    """What the server does instead of (or around) answering.

    `kind`: ratelimited (429), server_error (500, not acted), server_error_after (acted, then 500), drop (connection
    closed, not acted), drop_after (acted, then closed), late (acted, answered after `delay_s`), slow (waits
    `delay_s`, then acts and answers), hold (waits for `SlackServer.release`, then acts or not), echo (an error
    quoting the request's headers, 200), echo_500 (the same as a 500), or any other Slack error code."""

    kind: str
    retry_after: int = 0
    delay_s: float = 0.0


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    private: bool = False


@dataclass
class SlackState:
    """Everything the fake workspace holds; tests read and change it directly."""

    token: str = TOKEN
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # e-mail -> user id
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel id, ts) -> message
    deleted: list[dict[str, Any]] = field(default_factory=list)  # messages deleted by a "user"
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes
    files: list[dict[str, Any]] = field(default_factory=list)  # completed uploads, with channel and thread
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    scopes: set[str] | None = None  # granted scopes; None: all of them
    delay_s: float = 0.0  # added to chat.postMessage, to widen race windows
    rate_interval_s: float = 0.0  # enforce at most one write per channel per interval (429 otherwise)
    rate_retry_after: float = 1  # seconds; Slack sends whole seconds, tests may ask for less
    rate_limited: int = 0  # 429s the enforced rate gave
    last_write: dict[str, float] = field(default_factory=dict)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped or abandoned connection is the point of several faults, not a failure of the server


class SlackServer:
    """A real ThreadingHTTPServer on 127.0.0.1; `base_url` is what SLACK_API_URL would be."""

    def __init__(self) -> None:
        self.state = SlackState()
        self._lock = threading.Lock()
        self._ts = itertools.count(100)
        self._ids = itertools.count(1)
        self.httpd: QuietServer | None = QuietServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.thread: threading.Thread | None = None
        self.held = threading.Event()  # set when a held request arrived
        self._release = threading.Event()
        self._release_acts = True
        self.add_channel("alerts", "C0ALERTS")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str) -> str:
        """Where a click's answers to the person who clicked go (Slack: https://hooks.slack.com/actions/...)."""
        return f"{self.url}{RESPONSE_PATH}T0TEAM/{name}"

    def start(self) -> SlackServer:
        assert self.httpd is not None
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def down(self) -> bool:
        """Slack unreachable: while down, nothing listens on the port and connections are refused."""
        return self.httpd is None

    @down.setter
    def down(self, value: bool) -> None:
        if value and self.httpd is not None:
            self.stop()
        elif not value and self.httpd is None:
            self.httpd = QuietServer(("127.0.0.1", self.port), self._handler())
            self.start()

    # ------------------------------------------------------------ set-up by tests

    def add_channel(self, name: str, channel_id: str | None = None, *, member: bool = True) -> str:
        channel_id = channel_id or f"C{next(self._ids):07d}"
        self.state.channels[channel_id] = Channel(channel_id, name, member)
        return channel_id

    def add_user(self, email: str, user_id: str) -> None:
        self.state.users[email] = user_id

    def fail(self, method: str, kind: str, *, times: int = 1, retry_after: int = 0, delay_s: float = 0.0) -> None:
        """The next `times` calls of `method` get the fault `kind` (see Fault)."""
        self.state.faults.setdefault(method, []).extend(Fault(kind, retry_after, delay_s) for _ in range(times))

    def hold(self, method: str) -> None:
        """The next call of `method` waits until `release`; `held` is set when it arrives."""
        self.held.clear()
        self._release.clear()
        self.fail(method, "hold")

    def release(self, *, act: bool = True) -> None:
        """Lets a held request go on: acted on and answered (`act`), or dropped unanswered without acting."""
        self._release_acts = act
        self._release.set()

    def delete(self, channel: str, ts: str) -> None:
        """A person deletes a message (the thread's replies stay, as Slack keeps them)."""
        with self._lock:
            self.state.deleted.append(self.state.messages.pop((channel, ts)))

    # ------------------------------------------------------------ what tests read

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.state.calls if c.method == method]

    def top_level(self) -> list[dict[str, Any]]:
        """Messages posted to a channel (not in a thread), oldest first."""
        return [m for m in self.state.messages.values() if not m.get("thread_ts")]

    def responses(self) -> list[dict[str, Any]]:
        """What was posted to click response_urls, oldest first."""
        return [c.params for c in self.calls_to("response_url")]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.state.messages.values() if m.get("thread_ts") == ts]

    @staticmethod
    def notice(message: dict[str, Any]) -> dict[str, Any]:
        """The monitor's metadata payload on a message ({} when it has none)."""
        return (message.get("metadata") or {}).get("event_payload") or {}

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
        needed = SCOPES.get(method)
        if needed and self.state.scopes is not None:
            channel = self._channel(params.get("channel"))
            if channel is not None and channel.private:
                needed = PRIVATE_SCOPES.get(needed, needed)
            if needed not in self.state.scopes:
                return {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(self.state.scopes),
                }
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
        channel, error = self._writable(params.get("channel"))
        if error:
            return error
        assert channel is not None
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts")
        if thread_ts and (channel.id, thread_ts) not in self.state.messages:
            return {"ok": False, "error": "thread_not_found"}
        ts = self._next_ts()
        message = {"type": "message", "ts": ts, "text": params.get("text", ""), "blocks": params.get("blocks", [])}
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
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

    def _public(self, message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = {k: v for k, v in message.items() if k not in ("channel", "updates", "metadata")}
        if with_metadata and "metadata" in message:
            shown["metadata"] = message["metadata"]
        return shown

    @staticmethod
    def _page(items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def api_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        if channel is None or params.get("channel") != channel.id:
            return {"ok": False, "error": "channel_not_found"}  # reads take a channel id, never a #name
        if not channel.member:
            return {"ok": False, "error": "not_in_channel"}
        meta = str(params.get("include_all_metadata")).lower() in ("1", "true")
        newest_first = sorted(
            (m for (c, _), m in self.state.messages.items() if c == channel.id and not m.get("thread_ts")),
            key=lambda m: m["ts"],
            reverse=True,
        )
        return self._page([self._public(m, meta) for m in newest_first], params)

    def api_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        if channel is None or params.get("channel") != channel.id:
            return {"ok": False, "error": "channel_not_found"}
        parent = self.state.messages.get((channel.id, params.get("ts", "")))
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        meta = str(params.get("include_all_metadata")).lower() in ("1", "true")
        thread = [parent, *sorted(self.replies(parent["ts"]), key=lambda m: m["ts"])]
        return self._page([self._public(m, meta) for m in thread], params)

    def api_conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        channels = [
            {"id": c.id, "name": c.name, "is_private": c.private, "is_member": c.member}
            for c in self.state.channels.values()
            if not c.archived
        ]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

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

    def _rate_limited(self, method: str, params: dict[str, Any]) -> bool:
        """Slack's pace for writes: one per channel per interval, when a test asks for it to be enforced."""
        if method not in WRITES or not self.state.rate_interval_s:
            return False
        channel = self._channel(params.get("channel"))
        key = channel.id if channel else str(params.get("channel"))
        now = time.monotonic()
        if now - self.state.last_write.get(key, -1e9) < self.state.rate_interval_s:
            self.state.rate_limited += 1
            return True
        self.state.last_write[key] = now
        return False

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
                if path.path.startswith(RESPONSE_PATH):
                    method = "response_url"
                params = dict(parse_qsl(path.query))
                if method != "upload":  # file bytes, whatever Content-Type urllib gave them
                    params.update(parse_body(self.headers.get("Content-Type", ""), body))
                with server._lock:
                    server.state.calls.append(Call(method, params, dict(self.headers.items()), body))
                    fault = server._take_fault(method)
                if fault is not None and self._fault_before(fault):
                    return
                if method == "response_url":  # Slack's answer to an app's reply to a click: plain "ok"
                    self._send(200, b"ok", "text/plain")
                    return
                if method == "upload":
                    server.state.uploads[path.path.rsplit("/", 1)[-1]] = body
                    self._send(200, f"OK - {len(body)}".encode(), "text/plain")
                    return
                if self.headers.get("Authorization") != f"Bearer {server.state.token}":
                    self._json({"ok": False, "error": "invalid_auth"})
                    return
                if server.state.delay_s and method == "chat.postMessage":
                    time.sleep(server.state.delay_s)
                with server._lock:
                    if server._rate_limited(method, params):
                        body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                        self._send(429, body, "application/json", {"Retry-After": str(server.state.rate_retry_after)})
                        return
                    answer = server.api(method, params)
                self._fault_after(fault, answer)

            def _fault_before(self, fault: Fault) -> bool:
                """Faults that happen before Slack acts; True when the request ends here."""
                if fault.kind == "drop":
                    self._drop()
                elif fault.kind == "ratelimited":
                    body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                    self._send(429, body, "application/json", {"Retry-After": str(fault.retry_after)})
                elif fault.kind == "server_error":
                    self._send(500, b'{"ok": false, "error": "internal_error"}', "application/json")
                elif fault.kind in ("echo", "echo_500"):
                    echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
                    answer = {"ok": False, "error": f"invalid_request ({echoed})", "needed": echoed}
                    status = 500 if fault.kind == "echo_500" else 200
                    self._send(status, json.dumps(answer).encode(), "application/json")
                elif fault.kind == "slow":
                    time.sleep(fault.delay_s)
                    return False
                elif fault.kind == "hold":
                    server.held.set()
                    server._release.wait(timeout=60)
                    if server._release_acts:
                        return False
                    self._drop()
                elif fault.kind in ("drop_after", "late", "server_error_after"):
                    return False
                else:
                    self._json({"ok": False, "error": fault.kind})
                return True

            def _fault_after(self, fault: Fault | None, answer: dict[str, Any]) -> None:
                """Slack acted; its answer may still be lost, late or an error."""
                kind = fault.kind if fault else ""
                if kind == "drop_after":
                    self._drop()
                elif kind == "server_error_after":
                    self._send(500, b'{"ok": false, "error": "internal_error"}', "application/json")
                else:
                    if kind == "late":
                        time.sleep(fault.delay_s)  # type: ignore[union-attr]
                    self._json(answer)

            def _drop(self) -> None:
                self.close_connection = True
                with suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()  # no status line at all: the client sees a dropped connection

            def _json(self, answer: dict[str, Any]) -> None:
                self._send(200, json.dumps(answer).encode(), "application/json; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True  # the client gave up (time-out, or killed)

        return Handler

    def _take_fault(self, method: str) -> Fault | None:
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
