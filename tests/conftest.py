"""Shared fixtures: small real SQLite warehouses and registries in tmp_path, the demo warehouse built once per
session, and a local Slack server per test. Helpers that tests import live in modules of their own
(tests/demo.py, tests/servers.py, ...)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.demo import DEMO_NOW, build_demo_warehouse
from tests.local_files import REPO, write_registry
from tests.slack_server import SlackServer, serving

# Fixtures of the slow tiers (the BigQuery emulator, local Slack and Sheets API servers): a test that uses one
# carries the `slow` marker, so `pytest -m "not slow"` leaves it out.
SLOW_FIXTURES = {"bigquery_emulator", "slack", "slack_server", "sheets"}

# Every hypothesis test runs a fixed number of examples, the same ones every run (derandomize), with no
# per-example deadline: `make test` stays bounded and never flaky. For a longer hunt, HYPOTHESIS_PROFILE=explore
# runs ten times as many, randomly, and remembers failures in .hypothesis/.
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
settings.register_profile(
    "explore", settings.get_profile("ci"), max_examples=1000, derandomize=False,
    database=DirectoryBasedExampleDatabase(REPO / ".hypothesis"),
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def warehouse(tmp_path: Path) -> Callable[[str], Path]:
    """Builds a SQLite warehouse file from a SQL script; returns its path."""

    def build(script: str) -> Path:
        path = tmp_path / "warehouse.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(script)
        return path

    return build


@pytest.fixture
def registry(tmp_path: Path) -> Callable[[Sequence[dict[str, str]]], Path]:
    """Writes registry rows as a checks CSV (the header is every column any row names); returns its path."""

    return lambda rows: write_registry(tmp_path / "checks.csv", rows)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A local server speaking the Slack Web API, fresh for each test (modules that share one override this)."""
    with serving() as server:
        yield server


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse built at DEMO_NOW, once per session; read-only for the tests that share it."""
    return build_demo_warehouse(tmp_path_factory.mktemp("demo"), DEMO_NOW)


MEASURED: list[str] = []  # figures tests measure without asserting on them (timing is not for assertions here)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in MEASURED:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def measured() -> list[str]:
    """Lines printed at the end of the session: figures to report, e.g. answer times."""
    return MEASURED
