"""The product's doors run as users run them: the functions-framework server on a free loopback port (and
plain HTTP calls to it), and the command line in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK = Path(sys.executable).with_name("functions-framework")
START_TIMEOUT_S = 30


def cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m anomaly_monitor ARGS` from the repository root, without Slack variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    environment.update(PYTHONPATH=str(ROOT / "functions"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "anomaly_monitor", *args], capture_output=True, text=True, env=environment, cwd=ROOT
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str = "POST", body: bytes | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one request; an HTTP error is an answer like any other."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def post(url: str, body: object = None) -> tuple[int, dict]:
    status, doc, _ = call(url, "POST", None if body is None else json.dumps(body).encode())
    return status, doc


def function_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without Slack or Cloud Run variables, plus the function's settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "K_SERVICE"))}
    return {**inherited, "PYTHONPATH": str(ROOT / "functions"), **settings}


@contextmanager
def function_server(settings: Mapping[str, str], log: Path, target: str = "run_checks") -> Iterator[str]:
    """Serves functions/main.py's `target` with these settings (environment variables); yields its URL."""
    port = free_port()
    command = [str(FRAMEWORK), "--target", target, "--source", str(ROOT / "functions" / "main.py")]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], env=function_env(settings), stdout=out, stderr=out
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_listening(port, process, log)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"functions-framework did not start:\n{log.read_text()}") from None
            time.sleep(0.2)
