"""A local BigQuery emulator (bqemulator, DuckDB-backed) for the real BigQuery client: installed, started, stopped.

The emulator lives in a virtual environment of its own (.venv-bqemu, created on first use and kept), since it
pins duckdb and sqlglot versions the product need not share. It starts offline only when DuckDB finds its
spatial extension under $HOME/.duckdb, so it runs with a temporary HOME holding the copy its package ships.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bqemu"
REQUIREMENTS = Path(__file__).with_name("bq_emulator_requirements.txt")
DUCKDB_VERSION = "v1.5.5"
PROJECT = "test-project"
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Emulator:
    endpoint: str  # what BIGQUERY_API_ENDPOINT takes, e.g. http://127.0.0.1:40123
    project: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install() -> Path:
    """Creates .venv-bqemu from the frozen requirements; reinstalls only when they change."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements-sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    return VENV


def offline_home(venv: Path) -> Path:
    """A HOME whose ~/.duckdb holds the spatial extension, so DuckDB never tries to download it."""
    shipped = next(venv.glob(f"lib/python*/site-packages/duckdb_extension_spatial/extensions/{DUCKDB_VERSION}/*"))
    home = Path(tempfile.mkdtemp(prefix="bqemu-home-"))
    target = home / ".duckdb" / "extensions" / DUCKDB_VERSION / "linux_amd64"
    target.mkdir(parents=True)
    shutil.copy(shipped, target / shipped.name)
    return home


def wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the BigQuery emulator exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the BigQuery emulator did not become ready in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@functools.cache
def start() -> Emulator:
    """One emulator per test process, stopped when the process exits."""
    venv = install()
    home = offline_home(venv)
    port = free_port()
    log = home / "emulator.log"
    command = [str(venv / "bin" / "bqemulator"), "start", "--rest-port", str(port), "--grpc-port", "0"]
    command += ["--project", PROJECT, "--ephemeral", "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, stdout=out, stderr=out)
    atexit.register(stop, process, home)
    endpoint = f"http://127.0.0.1:{port}"
    wait_ready(endpoint, process, log)
    return Emulator(endpoint, PROJECT)


def stop(process: subprocess.Popen, home: Path) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def bigquery_emulator() -> Emulator:
    return start()
