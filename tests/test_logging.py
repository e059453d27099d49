"""LOG_FORMAT=json: one JSON object per line, with the fields Cloud Logging reads, and one summary line per run."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pytest

from anomaly_monitor import logs
from anomaly_monitor.runner import RunOptions, run
from tests.cloud_fixtures import local_backends

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def json_lines(monkeypatch):
    """Configures logging as the function does and returns a reader of the JSON lines written to stderr."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("json")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_each_line_is_one_json_object_cloud_logging_understands(json_lines) -> None:
    logging.getLogger("anomaly_monitor.test").warning("multi\nline %s", "message", extra={"run_id": "r1", "check": "c"})
    (entry,) = json_lines()
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "multi\nline message"
    assert (entry["run_id"], entry["check"]) == ("r1", "c")
    assert dt.datetime.fromisoformat(entry["time"]).tzinfo is not None


def test_exceptions_stay_inside_their_line(json_lines) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("anomaly_monitor.test").exception("failed")
    (entry,) = json_lines()
    assert entry["severity"] == "ERROR"
    assert "ValueError: boom" in entry["message"]


def test_a_run_logs_each_check_and_one_summary(json_lines, tmp_path) -> None:
    checks = (
        "unsettled,rows,SELECT id FROM orders WHERE status = 'authorised',,,,,\n"
        "total,threshold,SELECT SUM(amount) AS value FROM orders,,100,,,\n"
    )
    report = run(local_backends(tmp_path, checks), RunOptions(now=NOW))
    entries = json_lines()
    per_check = {e["check"]: e for e in entries if e["message"].startswith("check ")}
    assert set(per_check) == {"unsettled", "total"}
    for entry in per_check.values():
        assert entry["run_id"] == report.run_id
        assert isinstance(entry["duration_ms"], int)
        assert entry["severity"] == "INFO"
    assert per_check["unsettled"]["status"] == "alert"
    summaries = [e for e in entries if "finished" in e["message"]]
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary["run_id"] == report.run_id
    assert summary["summary"] == {"ok": 1, "alert": 1, "error": 0, "invalid": 0, "skipped": 0}
    assert "1 ok, 1 alert" in summary["message"]
