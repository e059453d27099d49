"""The backtest on small real SQLite warehouses: ticks, the simulated lifecycle, options, exit codes and output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomaly_monitor.backtest import BacktestOptions, resolve_span
from anomaly_monitor.cli import main
from anomaly_monitor.errors import ConfigError, QueryError, StateError
from anomaly_monitor.lookahead import unbounded_columns
from anomaly_monitor.models import Status
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import backtest, execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.state.sqlite import SqliteStateStore
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from tests.local_files import recorded, write_registry

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

START = dt.datetime(2026, 11, 22, 0, 0, tzinfo=dt.UTC)
# The latest hourly reading as of the run; F = above the maximum of 10.
READINGS = [1, 2, 50, 3, 40, 60, 45, 42, 41, 4, 5, 70]  # hours 00:00 .. 11:00
LATEST_READING = "SELECT value FROM readings WHERE ts <= CURRENT_TIMESTAMP() ORDER BY ts DESC LIMIT 1"
NOISY = {
    "name": "reading_too_high",
    "type": "threshold",
    "max": "10",
    "sql": LATEST_READING,
    "schedule": "30 * * * *",
    "alert_after": "2",
    "renotify_hours": "2",
}


def build_readings(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (ts TEXT, value REAL)")
        rows = [((START + dt.timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S"), v) for h, v in enumerate(READINGS)]
        conn.executemany("INSERT INTO readings VALUES (?, ?)", rows)
    return path


@pytest.fixture
def readings(tmp_path: Path) -> Settings:
    checks = write_registry(
        tmp_path / "checks.csv",
        [
            NOISY,
            {
                "name": "reading_rows",
                "sql": "SELECT ts, value FROM readings WHERE value > 10 AND ts <= CURRENT_TIMESTAMP()"
                " AND ts > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)",
            },
            {
                "name": "recent_high",
                "sql": "SELECT ts FROM readings WHERE value > 10"
                " AND ts > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)",
            },
            {"name": "broken", "sql": "SELECT nope FROM readings"},
            {"name": "not_a_number", "type": "threshold", "max": "ten", "sql": "SELECT 1 AS value"},
            {"name": "single_value", "type": "anomaly", "sql": LATEST_READING, "schedule": "30 * * * *"},
            {"name": "float_limit", "type": "threshold", "min": "-1e308", "max": "1e308", "sql": "SELECT -1.7e308"},
        ],
    )
    return Settings(
        checks_source=str(checks),
        warehouse_url=f"sqlite:///{build_readings(tmp_path / 'warehouse.db')}",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
    )


def state_file(settings: Settings) -> Path:
    return Path(settings.state_url.removeprefix("sqlite:///"))


def replay(settings: Settings, name: str, hours: int = 12, **options) -> object:
    return backtest(settings, BacktestOptions(name, START, START + dt.timedelta(hours=hours), **options))


def test_the_lifecycle_is_simulated_across_the_ticks(readings):
    result = replay(readings, "reading_too_high")
    assert [t.hour for t in result.ticks] == list(range(12))  # its schedule, 30 * * * *: every hour at :30
    run = result.runs[0]
    assert [str(p.status) for p in run.points] == ["ok" if v <= 10 else "alert" for v in READINGS]
    assert [p.value for p in run.points] == READINGS
    assert run.points[2].expected == (None, 10.0)
    # 02:30 fails once (alert_after 2: no message); 04:30 and 05:30 fail: opened at 05:30, reminded at 07:30
    # (renotify_hours 2), resolved at 09:30; 11:30 fails once more: not enough to post
    [incident] = run.incidents
    assert incident.to_json() == {
        "opened_at": "2026-11-22T05:30:00+00:00",
        "resolved_at": "2026-11-22T09:30:00+00:00",
        "failing_runs": 5,
        "notices": 3,
        "peak_value": 60.0,
        "message": "60 is above the maximum 10",
    }
    assert run.summary() == {"ok": 5, "alert": 7, "error": 0, "incidents": 1, "notices": 3}
    assert result.exit_code() == 0


def test_the_notices_are_those_real_runs_would_have_sent(readings, tmp_path, monkeypatch):
    """The same ticks run for real (console notifier, recording into a state store) notify at the same ticks."""
    monkeypatch.chdir(tmp_path)
    result = replay(readings, "reading_too_high")
    for tick in result.ticks:
        execute(readings, RunOptions(checks=("reading_too_high",), now=tick))
    records = recorded(state_file(readings), ["reading_too_high"])
    notified = [r.checked_at for r in records["reading_too_high"] if r.notified]
    [incident] = result.runs[0].incidents
    assert len(notified) == incident.notices == 3
    assert notified[0] == dt.datetime.fromisoformat(incident.to_json()["opened_at"])
    assert notified[-1] == incident.resolved_at


def test_a_single_value_anomaly_check_carries_its_history_from_the_state_store(readings, tmp_path, monkeypatch):
    """Seeded from the runs recorded before the span, it judges each tick as the real runs that follow would."""
    monkeypatch.chdir(tmp_path)  # the console notifier saves its charts under ./charts
    with sqlite3.connect(readings.warehouse_url.removeprefix("sqlite:///")) as conn:
        earlier = [3, 4, 2, 3, 5, 4, 3, 2, 4, 3]
        hours = [START - dt.timedelta(hours=len(earlier) - h) for h in range(len(earlier))]
        conn.executemany(
            "INSERT INTO readings VALUES (?, ?)", [(t.strftime("%Y-%m-%d %H:%M:%S"), v) for t, v in zip(hours, earlier)]
        )
    for h in range(len(earlier), 0, -1):
        execute(
            readings, RunOptions(checks=("single_value",), now=START - dt.timedelta(hours=h) + dt.timedelta(minutes=30))
        )
    before = recorded(state_file(readings), ["single_value"])["single_value"]
    result = replay(readings, "single_value")
    assert recorded(state_file(readings), ["single_value"])["single_value"] == before  # only read
    for tick in result.ticks:  # the same ticks run for real, continuing the recorded history
        execute(readings, RunOptions(checks=("single_value",), now=tick))
    after = recorded(state_file(readings), ["single_value"])["single_value"][len(before) :]
    points = result.runs[0].points
    assert "comparable" not in points[0].message  # judged from the first tick, thanks to the seed
    assert [(p.status, p.value, p.message) for p in points] == [(r.status, r.value, r.message) for r in after]
    assert Status.ALERT in {p.status for p in points}
    assert result.runs[0].notices == sum(r.notified for r in after)


def test_a_single_value_check_without_history_learns_from_its_own_ticks(readings):
    points = replay(readings, "single_value").runs[0].points
    assert [p.message.split(" comparable")[0] for p in points[:3]] == ["only 0", "only 1", "only 2"]
    assert "comparable" not in points[-1].message  # judged once enough earlier ticks are there
    assert recorded(state_file(readings), ["single_value"]) == {}  # none recorded
    assert not state_file(readings).exists()  # reading the state created nothing


def test_rows_checks_count_their_rows(readings):
    run = replay(readings, "reading_rows").runs[0]
    assert run.points[5].status is Status.ALERT and run.points[5].value == 1.0
    assert run.sensitivity is None


def test_an_anomaly_check_without_sensitivity_reports_its_own(readings, capsys):
    assert [run.sensitivity for run in replay(readings, "single_value").runs] == [3.0]  # the registry's default
    assert main(cli(readings, "--check", "single_value", "--json")) == 0
    assert [run["sensitivity"] for run in json.loads(capsys.readouterr().out)["runs"]] == [3.0]
    assert main(cli(readings, "--check", "single_value")) == 0
    assert "sensitivity 3: would have opened" in capsys.readouterr().out


def test_every_thins_the_ticks_and_sensitivities_replay_an_anomaly_check_once_each(readings):
    result = replay(readings, "single_value", every="30 */3 * * *", sensitivities=(2.0, 3.0))
    assert [t.hour for t in result.ticks] == [0, 3, 6, 9]
    assert [run.sensitivity for run in result.runs] == [2.0, 3.0]
    assert result.queries == 4  # one query per tick, shared by both sensitivities


def test_a_query_that_fails_is_reported_not_replayed_and_exits_2(readings):
    result = replay(readings, "broken")
    assert result.runs == [] and "no such column: nope" in result.message
    assert result.exit_code() == 2
    document = result.to_json()
    assert document["runs"] == [] and document["ticks"] == 13  # no schedule: hourly, both ends included


def test_an_invalid_check_exits_2_naming_its_column(readings):
    result = replay(readings, "not_a_number")
    assert 'column "max"' in result.message and result.exit_code() == 2


def test_bad_options_are_config_errors(readings):
    with pytest.raises(ConfigError, match="--sensitivity applies to anomaly checks"):
        replay(readings, "reading_too_high", sensitivities=(2.0,))
    with pytest.raises(ConfigError, match="no tick of '0 7 1 1 \\*'"):
        replay(readings, "reading_too_high", every="0 7 1 1 *")
    with pytest.raises(ConfigError, match="more than 10,000 ticks"):
        backtest(readings, BacktestOptions("reading_too_high", START, START + dt.timedelta(days=8), every="* * * * *"))
    with pytest.raises(ConfigError, match="no check named 'nope'"):
        replay(readings, "nope")


def test_the_span_defaults_to_the_30_days_up_to_now():
    assert resolve_span(None, None, None, NOW) == (NOW - dt.timedelta(days=30), NOW)
    assert resolve_span(None, None, 7, NOW) == (NOW - dt.timedelta(days=7), NOW)
    assert resolve_span(START, None, 2, NOW) == (START, START + dt.timedelta(days=2))
    assert resolve_span(START, None, None, NOW) == (START, NOW)
    assert resolve_span(None, START, None, NOW) == (START - dt.timedelta(days=30), START)
    with pytest.raises(ConfigError, match="not before"):
        resolve_span(NOW, START, None, NOW)
    with pytest.raises(ConfigError, match="both --from and --to"):
        resolve_span(START, NOW, 3, NOW)


def test_a_from_after_now_says_the_span_ends_now_by_default():
    with pytest.raises(ConfigError, match=r"^--from 2026-11-24T09:00:00\+00:00 is not before now \(the default --to\)"):
        resolve_span(NOW + dt.timedelta(days=1), None, None, NOW)


def cli(settings: Settings, *args: str) -> list[str]:
    return [
        "backtest", "--checks", settings.checks_source, "--warehouse", settings.warehouse_url,
        "--state", settings.state_url, "--from", START.isoformat(), "--to", "2026-11-22T12:00:00Z", *args,
    ]  # fmt: skip


def test_cli_json_document_has_the_spec_fields(readings, capsys):
    assert main(cli(readings, "--check", "reading_too_high", "--json")) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"check", "type", "from", "to", "ticks", "runs"}
    assert (document["check"], document["type"], document["ticks"]) == ("reading_too_high", "threshold", 12)
    assert document["from"] == "2026-11-22T00:00:00+00:00" and document["to"] == "2026-11-22T12:00:00+00:00"
    [run] = document["runs"]
    assert set(run) == {"sensitivity", "points", "incidents", "summary"} and run["sensitivity"] is None
    assert run["points"][2] == {
        "at": "2026-11-22T02:30:00+00:00",
        "status": "alert",
        "value": 50.0,
        "expected": [None, 10.0],
        "message": "50 is above the maximum 10",
    }
    assert run["summary"] == {"ok": 5, "alert": 7, "error": 0, "incidents": 1, "notices": 3}


def test_cli_text_shows_the_incidents_and_a_summary_line(readings, capsys):
    assert main(cli(readings, "--check", "reading_too_high")) == 0
    out = capsys.readouterr().out
    assert "opened            resolved          how long  failing runs  notices  peak value  reason" in out
    assert "2026-11-22 05:30  2026-11-22 09:30  4h                   5        3          60  60 is above the max" in out
    assert "would have opened 1 incident and sent 3 notices in 12 hours (5 ok, 7 alert, 0 error of 12 ticks)" in out


def test_cli_chart_writes_a_png(readings, tmp_path, capsys):
    chart = tmp_path / "chart.png"
    assert main(cli(readings, "--check", "single_value", "--sensitivity", "2,4", "--chart", str(chart))) == 0
    import matplotlib.image

    image = matplotlib.image.imread(chart)
    assert image.shape[0] > 400 and image.shape[1] >= 1200  # two panels, one per sensitivity
    assert "sensitivity 2: would have opened" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--check", "reading_too_high"], 0),
        (["--check", "broken"], 2),
        (["--check", "not_a_number", "--json"], 2),
        (["--check", "nope"], 3),
        (["--check", "reading_too_high", "--every", "61 * * * *"], 3),
        (["--check", "reading_too_high", "--every", "0 0 30 2 *"], 3),
        (["--check", "reading_too_high", "--sensitivity", "2"], 3),
        (["--check", "single_value", "--sensitivity", "2,zero"], 3),
        (["--check", "single_value", "--sensitivity", "-1"], 3),
        (["--check", "reading_too_high", "--days", "3"], 3),  # with both --from and --to
        (["--check", "reading_too_high", "--check", "single_value"], 3),  # one check per backtest
        (["--check", "reading_too_high", "--chart", "/no/such/folder/chart.png"], 3),
    ],
)
def test_cli_exit_codes(readings, capsys, args, code):
    try:
        assert main(cli(readings, *args)) == code
    except SystemExit as exc:  # argparse refuses the option itself
        assert exc.code == code
    if code == 3:
        assert "error" in capsys.readouterr().err.lower()


def test_a_sensitivity_above_what_the_registry_allows_is_a_bad_option(readings, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(cli(readings, "--check", "single_value", "--sensitivity", "3,101"))
    assert exit_info.value.code == 3
    assert "'101' is above 100, the most a check's sensitivity may be" in capsys.readouterr().err
    assert main(cli(readings, "--check", "single_value", "--sensitivity", "100")) == 0  # the bound itself is fine


def test_a_chart_of_values_at_the_float_limit_is_drawn(readings, tmp_path):
    chart = tmp_path / "chart.png"
    assert main(cli(readings, "--check", "float_limit", "--chart", str(chart))) == 0  # every tick alerts
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_a_chart_that_cannot_be_written_is_a_bad_option_not_a_crash(readings, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # a folder: refused before anything is replayed
        main(cli(readings, "--check", "single_value", "--chart", str(tmp_path)))
    assert exit_info.value.code == 3 and "is a folder" in capsys.readouterr().err
    unwritable = Path("/proc/chart.png")  # a folder nobody can create files in, whoever runs the tests
    if unwritable.parent.is_dir():
        assert main(cli(readings, "--check", "single_value", "--chart", str(unwritable))) == 3
        assert "--chart /proc/chart.png: the PNG could not be written" in capsys.readouterr().err


def test_cli_without_a_check_is_a_bad_option(readings):
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", "--checks", readings.checks_source])
    assert exit_info.value.code == 3


OPTION_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["0", "-3", "1e9", "2,3,4", "0,1", "nan", "inf", "* * * * *", "0 7 * * 1", "61 * * * *",
                     "2026-11-22", "2026-11-22T05:00:00Z", "1969-12-31", "3000-01-01", "99999999999"]),
)  # fmt: skip


@given(
    st.lists(
        st.tuples(st.sampled_from(["--from", "--to", "--days", "--every", "--sensitivity"]), OPTION_TEXT), max_size=4
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_option_value_crashes_the_backtest(readings, options):
    args = ["backtest", "--checks", readings.checks_source, "--warehouse", readings.warehouse_url,
            "--state", readings.state_url, "--check", "single_value", "--json"]  # fmt: skip
    for flag, value in options:
        args += [flag, value]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse: a bad option
        code = exc.code
    assert code in (0, 2, 3)


def test_a_session_runs_many_queries_on_one_read_only_connection_with_its_own_clock(readings):
    warehouse = SqliteWarehouse.from_url(readings.warehouse_url)
    with warehouse.session() as session:
        answers = [
            session.query(LATEST_READING, check_name="x", limit=None, timeout_s=5, now=START + dt.timedelta(hours=h))
            for h in (2, 5, 11)
        ]
        assert [a.rows[0]["value"] for a in answers] == [50, 60, 70]
        with pytest.raises(QueryError, match="only SELECT is allowed, found DELETE"):
            session.query("DELETE FROM readings", check_name="x", limit=None, timeout_s=5, now=NOW)
        slow = "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 1e8) SELECT COUNT(*) FROM n"
        with pytest.raises(QueryError, match=r"timed out after 0\.2 s"):
            session.query(slow, check_name="x", limit=None, timeout_s=0.2, now=NOW)
        # the connection outlives a cancelled query
        assert session.query(LATEST_READING, check_name="x", limit=1, timeout_s=5, now=NOW).rows[0]["value"] == 70


@pytest.mark.parametrize(
    ("sql", "unbounded"),
    [
        ("SELECT * FROM t WHERE created >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 2 HOUR)", ["created"]),
        ("SELECT * FROM t WHERE TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 2 HOUR) < created", ["created"]),
        ("SELECT * FROM t WHERE day > DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY) AND day <= CURRENT_DATE()", []),
        (
            "SELECT * FROM t WHERE created BETWEEN TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY) AND "
            "CURRENT_TIMESTAMP()",
            [],
        ),
        ("SELECT * FROM t WHERE created < TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)", []),
        (
            "WITH a AS (SELECT * FROM t WHERE created >= CURRENT_TIMESTAMP()), b AS (SELECT * FROM t WHERE "
            "created >= CURRENT_TIMESTAMP() AND created < CURRENT_TIMESTAMP()) SELECT * FROM a, b",
            ["created"],
        ),
        ("SELECT * FROM t WHERE created >= '2026-01-01'", []),
        ("SELECT 'not sql", []),
    ],
)
def test_lower_bounds_on_the_clock_without_an_upper_bound_are_noticed(sql, unbounded):
    assert unbounded_columns(sql) == unbounded


def test_a_backtest_warns_when_its_query_reads_rows_that_arrived_after_the_tick(readings, caplog):
    replay(readings, "reading_rows", hours=2)
    assert "arrived after" not in caplog.text  # bounded on both sides
    replay(readings, "recent_high", hours=2)
    assert "bounds ts from below" in caplog.text and "(e.g. `AND ts < CURRENT_TIMESTAMP()`)" in caplog.text


def test_a_backtest_without_a_chart_imports_neither_pandas_nor_matplotlib(readings, capsys):
    import subprocess
    import sys

    code = (
        "import sys; from anomaly_monitor.cli import main; "
        f"main({cli(readings, '--check', 'reading_too_high', '--json')!r}); "
        "print([m for m in ('pandas', 'matplotlib') if m in sys.modules], file=sys.stderr)"
    )
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "functions")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["ticks"] == 12
    assert out.stderr.strip().endswith("[]")


def test_a_query_that_fails_at_every_tick_exits_2_with_every_point_an_error(readings, tmp_path):
    slow = "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 1e9) SELECT x FROM n WHERE x < 0"
    checks = write_registry(tmp_path / "slow.csv", [{"name": "too_slow", "sql": slow}])
    settings = dataclasses.replace(readings, checks_source=str(checks), query_timeout_s=0.05)
    result = replay(settings, "too_slow", hours=2)
    [run] = result.runs
    assert [str(p.status) for p in run.points] == ["error"] * 3
    assert "timed out after 0.05 s" in run.points[0].message
    assert [i.to_json()["failing_runs"] for i in run.incidents] == [3]  # errors open incidents too
    assert result.exit_code() == 2


def tables_in(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]


def test_the_backtest_reads_the_state_store_and_creates_nothing_in_it(readings, tmp_path):
    """No file for a missing store, no table in a file without them, not a byte changed in one with history."""
    result = replay(readings, "single_value")
    assert not state_file(readings).exists() and result.runs[0].points
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    replay(dataclasses.replace(readings, state_url=f"sqlite:///{other}"), "single_value")
    assert tables_in(other) == ["unrelated"]
    execute(readings, RunOptions(checks=("single_value",), now=START - dt.timedelta(hours=1)))
    before = state_file(readings).read_bytes()
    replay(readings, "single_value")
    assert state_file(readings).read_bytes() == before


def test_a_read_only_state_store_reads_what_the_store_holds_and_refuses_to_write(readings, tmp_path):
    writer = SqliteStateStore.from_url(readings.state_url)
    reader = SqliteStateStore.from_url(readings.state_url, read_only=True)
    assert reader.points(["single_value"], NOW) == {} and reader.latest(["single_value"], NOW) == {}
    for hours in (3, 2, 1):
        execute(readings, RunOptions(checks=("single_value",), now=START + dt.timedelta(hours=hours)))
    assert reader.points(["single_value"], NOW) == writer.points(["single_value"], NOW) != {}
    assert reader.latest(["single_value"], NOW) == writer.latest(["single_value"], NOW) != {}
    with pytest.raises(StateError, match="opened read-only: check_results cannot be written"):
        reader.append(list(writer.latest(["single_value"], NOW).values()))
    assert len(recorded(state_file(readings), ["single_value"])["single_value"]) == 3
