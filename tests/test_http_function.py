"""The Cloud Function door: the real functions-framework server, started on a free loopback port."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from tests import servers
from tests.cloud_fixtures import CHECKS_HEADER, make_warehouse
from tests.servers import call, function_server, post

CHECKS = (
    "unsettled,rows,SELECT id FROM orders WHERE status = 'authorised',,,,,\n"
    "total,threshold,SELECT SUM(amount) AS value FROM orders,,100,,,\n"
)

pytestmark = pytest.mark.slow  # a real server process


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("function")
    (tmp / "checks.csv").write_text(CHECKS_HEADER + CHECKS)
    make_warehouse(tmp / "warehouse.db")
    settings = {
        "CHECKS_SOURCE": str(tmp / "checks.csv"),
        "WAREHOUSE_URL": f"sqlite:///{tmp / 'warehouse.db'}",
        "STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        "LOG_FORMAT": "json",
    }
    with function_server(settings, tmp / "server.log") as url:
        yield url, tmp


def test_a_post_runs_the_checks_and_answers_the_run_document(server) -> None:
    url, _ = server
    status, doc = post(url, {"force": True})
    assert status == 200  # an alert is a result, not a failure
    assert doc["summary"] == {"ok": 1, "alert": 1, "error": 0, "invalid": 0, "skipped": 0}
    assert {c["name"]: c["status"] for c in doc["checks"]} == {"unsettled": "alert", "total": "ok"}
    unsettled = doc["checks"][0]
    assert unsettled["row_count"] == 2 and unsettled["rows"] == [{"id": 1}, {"id": 3}]
    assert dt.datetime.fromisoformat(doc["started_at"]) <= dt.datetime.fromisoformat(doc["finished_at"])


def test_an_empty_body_runs_everything_due(server) -> None:
    status, doc = post(server[0])
    assert status == 200 and len(doc["checks"]) == 2


def test_checks_select_by_name(server) -> None:
    status, doc = post(server[0], {"checks": ["total"], "force": True})
    assert status == 200
    assert [c["name"] for c in doc["checks"]] == ["total"]


def test_a_dry_run_records_nothing(server) -> None:
    url, tmp = server
    before = (tmp / "state.db").stat().st_mtime_ns if (tmp / "state.db").exists() else None
    status, doc = post(url, {"dry_run": True, "force": True})
    assert status == 200 and len(doc["checks"]) == 2
    after = (tmp / "state.db").stat().st_mtime_ns if (tmp / "state.db").exists() else None
    assert before == after


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "must be a JSON object"),
        (b"{not json", "must be a JSON object"),
        (b'{"checks": ["total"], "colour": "red"}', "unknown field colour"),
        (b'{"force": "yes"}', "field 'force' must be true or false"),
        (b'{"tags": "daily"}', "field 'tags' must be a list of strings"),
        (b'{"checks": ["no_such_check"]}', "no check named 'no_such_check'"),
    ],
)
def test_a_bad_body_is_a_400_with_a_json_error(server, body: bytes, message: str) -> None:
    status, doc, _ = call(server[0], "POST", body)
    assert status == 400
    assert message in doc["error"]


def test_other_methods_are_405(server) -> None:
    status, doc, headers = call(server[0], "GET")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert "POST" in doc["error"]


def test_a_run_that_cannot_happen_is_a_500_so_scheduler_retries(server) -> None:
    url, tmp = server
    checks = tmp / "checks.csv"
    checks.rename(tmp / "moved.csv")
    try:
        status, doc = post(url, {"force": True})
    finally:
        (tmp / "moved.csv").rename(checks)
    assert status == 500
    assert "does not exist" in doc["error"]


def test_the_server_logs_json_lines_with_one_summary_per_run(server) -> None:
    url, tmp = server
    post(url, {"checks": ["total"], "force": True})
    lines = [json.loads(line) for line in (tmp / "server.log").read_text().splitlines() if line.startswith("{")]
    summaries = [entry for entry in lines if "finished in" in entry["message"]]
    assert summaries and all("run_id" in entry and entry["severity"] == "INFO" for entry in summaries)
    assert summaries[-1]["summary"]["ok"] == 1


def test_importing_main_stays_cheap() -> None:
    """Every cold start pays for the import: the Google, Sheets and Slack clients load on first use only."""
    heavy = ["google.cloud.bigquery", "gspread", "pandas", "slack_sdk", "google.cloud.secretmanager", "sqlglot"]
    code = f"import sys, main; print([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(servers.ROOT / "functions")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
