"""The backtest on BigQuery: the ticks' bytes estimated with dry runs before anything runs, and the replay itself
with the real BigQuery client against the local emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import responses

from anomaly_monitor.backtest import BacktestOptions
from anomaly_monitor.cli import main
from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.models import GB
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import backtest, execute
from anomaly_monitor.settings import Settings
from tests import bq_emulator
from tests.local_files import write_registry

bigquery_emulator = bq_emulator.bigquery_emulator
END = dt.datetime(2026, 1, 6, 9, 0, tzinfo=dt.UTC)


def test_a_backtest_scanning_more_than_max_gb_billed_times_ticks_is_refused_before_any_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """BigQuery's REST answers to dry-run jobs that would scan 25 GB each, for a check capped at 10 GB a run."""
    endpoint, project = "http://bigquery.test", "costly-project"
    monkeypatch.setenv("BIGQUERY_API_ENDPOINT", endpoint)
    checks = write_registry(
        tmp_path / "checks.csv",
        [{"name": "big_scan", "sql": "SELECT id FROM events WHERE amount < 0", "max_gb_billed": "10"}],
    )
    sent: list[dict] = []

    def dry_run(request) -> tuple[int, dict, str]:
        job = json.loads(request.body)
        sent.append(job)
        job |= {"jobReference": {"projectId": project, "jobId": uuid.uuid4().hex, "location": "EU"}}
        job |= {"status": {"state": "DONE"}, "statistics": {"query": {"totalBytesProcessed": str(25 * GB)}}}
        return 200, {}, json.dumps(job)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add_callback(responses.POST, f"{endpoint}/bigquery/v2/projects/{project}/jobs", callback=dry_run)
        code = main(["backtest", "--checks", str(checks), "--warehouse", f"bigquery://{project}/shop",
                     "--check", "big_scan", "--to", END.isoformat(), "--days", "2"])  # fmt: skip
    assert code == 3
    assert (
        "check big_scan: its 49 ticks would scan about 1,225.0 GB, above max_gb_billed × ticks = 490.0 GB: thin the "
        "ticks with --every (e.g. --every '0 7 * * *' for one a day) or raise the check's max_gb_billed"
    ) in capsys.readouterr().err
    assert len(sent) == 3 and all(job["configuration"]["dryRun"] for job in sent)  # first, middle and last tick


@pytest.fixture(scope="module")
def shop(bigquery_emulator: bq_emulator.Emulator) -> str:
    """A dataset with an hourly metric over three days."""
    dataset = f"backtest_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.metric (ts TIMESTAMP, value FLOAT64)").result()
    hours = [END - dt.timedelta(hours=h) for h in range(72)]
    values = ", ".join(f"(TIMESTAMP '{t:%Y-%m-%d %H:%M:%S}', {50 + (t.hour % 5) * 3 + (400 if i == 20 else 0)})"
                       for i, t in enumerate(hours))  # fmt: skip
    client.query(f"INSERT INTO {dataset}.metric VALUES {values}").result()
    return f"bigquery://{bigquery_emulator.project}/{dataset}"


def test_a_backtest_on_bigquery_judges_each_tick_as_a_dry_run_there_would(
    shop: str, bigquery_emulator: bq_emulator.Emulator, tmp_path: Path
) -> None:
    checks = write_registry(
        tmp_path / "checks.csv",
        [
            {"name": "spikes", "sql": "SELECT ts, value FROM metric WHERE value > 200 ORDER BY ts"},
            {"name": "metric_series", "type": "anomaly", "sql": "SELECT ts, value FROM metric ORDER BY ts"},
        ],
    )
    settings = Settings(
        checks_source=str(checks),
        warehouse_url=shop,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        bigquery_api_endpoint=bigquery_emulator.endpoint,
    )
    options = BacktestOptions("spikes", END - dt.timedelta(hours=5), END, every="0 * * * *")
    replays = {
        name: backtest(settings, dataclasses.replace(options, check=name)) for name in ("spikes", "metric_series")
    }
    assert replays["metric_series"].queries < len(replays["metric_series"].ticks)  # fetched once, not per tick
    for i, tick in enumerate(replays["spikes"].ticks):
        report = execute(settings, RunOptions(dry_run=True, force=True, now=tick))
        for result in report.results:
            point = replays[result.name].runs[0].points[i]
            assert (point.status, point.value, point.expected, point.message) == (
                result.status, result.value, result.expected, result.message
            )  # fmt: skip
    assert replays["spikes"].runs[0].summary()["alert"] == 6
