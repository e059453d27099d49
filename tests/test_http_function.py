"""The Cloud Function door: the real functions-framework server, started on a free loopback port."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.cloud_fixtures import CHECKS_HEADER, make_warehouse
from tests.servers import call, function_server, post, strict_json

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
    with function_server(function_settings(tmp), tmp / "server.log") as url:
        yield url, tmp


def function_settings(tmp: Path) -> dict[str, str]:
    """The function's environment over checks.csv, warehouse.db and state.db in `tmp`."""
    return {
        "CHECKS_SOURCE": str(tmp / "checks.csv"),
        "WAREHOUSE_URL": f"sqlite:///{tmp / 'warehouse.db'}",
        "STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        "LOG_FORMAT": "json",
    }


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
        (b"[" * 100_000, "the API takes at most 65,536"),
        (b"[" * 60_000, "nested too deeply"),
        (b'{"tags": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nested too deeply"),
        (b'{"tags": ["caf\xe9"]}', "not UTF-8 text: byte 14"),
        (b"null", "must be a JSON object"),
        (b'"tags"', "must be a JSON object"),
        (b'{"checks": [1]}', "field 'checks' must be a list of strings"),
        (b'{"checks": {"total": true}}', "field 'checks' must be a list of strings"),
        (b'{"force": 1}', "field 'force' must be true or false"),
        (b'{"dry_run": NaN}', "field 'dry_run' must be true or false"),
        (b'{"force": ' + b"9" * 5000 + b"}", "it is not JSON"),
        (b'{"tags": [' + b'"hourly", ' * 10_000 + b'"daily"]}', "the API takes at most 65,536"),
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


def test_a_huge_body_sent_in_chunks_is_a_400(server) -> None:
    host, port = server[0].removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = iter([b'{"tags": [', *(b'"hourly", ' for _ in range(20_000)), b'"daily"]}'])
    connection.request("POST", "/", body=body, headers={"Content-Type": "application/json"}, encode_chunked=True)
    answer = connection.getresponse()
    assert answer.status == 400
    assert "at most 65,536" in strict_json(answer.read())["error"]


@pytest.mark.parametrize(("method", "path"), [("GET", "favicon.ico"), ("POST", "robots.txt")])
def test_flasks_own_not_found_is_json_too(server, method: str, path: str) -> None:
    status, doc, headers = call(server[0] + path, method)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert doc["error"] == "Not Found"


@pytest.fixture
def app():
    """functions-framework's own Flask app around main.py, in this process: a crash cannot be provoked from
    outside a server."""
    import functions_framework

    return functions_framework.create_app("run_checks", str(servers.ROOT / "functions" / "main.py"))


def test_a_crash_inside_the_function_is_a_json_500(app) -> None:
    def broken(path: str) -> None:  # stands in for a bug
        raise RuntimeError("a bug")

    app.view_functions["run"] = broken
    answer = app.test_client().post("/", json={})
    assert answer.status_code == 500 and answer.content_type == "application/json"
    assert "RuntimeError" in strict_json(answer.data)["error"]


ODDITIES = """
CREATE TABLE oddities (b BLOB, pos REAL, neg REAL, big INTEGER, huge TEXT, day TEXT, ratio REAL);
INSERT INTO oddities VALUES (x'00ff10', 1e999, -1e999, 9223372036854775807, printf('%.*c', 200000, 'x'),
                             '2026-11-23', 0.5);
"""
ODD_CHECKS = (
    "oddities,rows,SELECT * FROM oddities,,,,,\n"
    "blob,rows,SELECT randomblob(4) AS b,,,,,\n"
    "infinite,threshold,SELECT pos AS value FROM oddities,,100,,,\n"
)
ODD_ROW = {
    "b": "AP8Q",  # base64 of the bytes 00 ff 10
    "pos": "Infinity",
    "neg": "-Infinity",
    "big": 9223372036854775807,
    "huge": "x" * 9_999 + "…",  # cut at JSON_TEXT_LIMIT characters
    "day": "2026-11-23",
    "ratio": 0.5,
}


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oddities")
    (tmp / "checks.csv").write_text(CHECKS_HEADER + ODD_CHECKS)
    with sqlite3.connect(make_warehouse(tmp / "warehouse.db")) as conn:
        conn.executescript(ODDITIES)
    with function_server(function_settings(tmp), tmp / "server.log") as url:
        yield url, tmp


def test_any_value_the_data_holds_is_answered_200_with_valid_json(odd_server) -> None:
    status, doc = post(odd_server[0], {"force": True})  # call() parses strictly: NaN or Infinity would fail
    assert status == 200
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["oddities"]["rows"] == [ODD_ROW]
    assert by_name["blob"]["status"] == "alert"
    assert len(base64.b64decode(by_name["blob"]["rows"][0]["b"])) == 4
    assert by_name["infinite"]["status"] == "error"  # an infinite metric is not a measurement
    assert by_name["infinite"]["message"] == "the metric is inf, not a finite number"


def test_the_cli_json_encodes_values_exactly_as_the_http_answer(odd_server) -> None:
    url, tmp = odd_server
    _, answer = post(url, {"checks": ["oddities"], "force": True, "dry_run": True})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {"PYTHONPATH": str(servers.ROOT / "functions")}
    warehouse, state = f"sqlite:///{tmp / 'warehouse.db'}", f"sqlite:///{tmp / 'state.db'}"
    options = ["--json", "--force", "--dry-run", "--check", "oddities", "--checks", str(tmp / "checks.csv")]
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_monitor", "run", *options, "--warehouse", warehouse, "--state", state],
        capture_output=True,
        env=env,
        cwd=servers.ROOT,
    )
    assert done.returncode == 1, done.stderr
    printed = strict_json(done.stdout)
    assert printed["checks"][0]["rows"] == answer["checks"][0]["rows"] == [ODD_ROW]
