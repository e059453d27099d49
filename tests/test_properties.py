"""No input crashes a run: generated registries, cron strings, --now values, CLI options, values and HTTP bodies.

Each property states what must hold for every input: a registry reads as checks and invalid rows (whose
message names the row and the column) or fails as a whole with exit 3; a run ends with its JSON document and
the exit code its statuses give; a schedule is refused or ticks; a body is answered 200 or 400 with JSON.
The example counts come from the hypothesis profile in conftest.py (fixed and derandomized in `make test`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from anomaly_monitor import cli
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.exclusions import parse_exclusions
from anomaly_monitor.models import Check, json_value
from anomaly_monitor.registry import COLUMN_NAMES, parse_registry
from anomaly_monitor.schedule import ScheduleError, check_schedule, is_due, next_tick
from anomaly_monitor.sources.csv_source import CsvSource
from tests.cloud_fixtures import CHECKS_HEADER, make_warehouse
from tests.cloud_fixtures import ORDERS_SCRIPT as TABLES
from tests.servers import call, function_server, strict_json

WORKSHEETS = ("checks", "status", "exclusions")

# --- Strategies ------------------------------------------------------------------------------------------------

NOTABLE = [
    "", " ", "TRUE", "false", "maybe", "rows", "threshold", "anomaly", "Threshold ", "hour_of_day", "up",
    "critical", "#alerts", "C0123ABC", "U024BE7LH, ana@example.com", "bob", "hourly, Finance", "https://x.example",
    "checks", "Status", "exclusions", '"', '""', '"quoted"', 'say "hi"', ",", "\n", "\r\n", "\x00", "\ufeff", "\u2028",
    "x" * 50_001, "€" * 30_000,
]  # fmt: skip
SQL = [
    "SELECT 1 AS value", "SELECT id, amount FROM orders", "SELECT COUNT(*) AS value FROM orders",
    "SELECT CURRENT_TIMESTAMP() AS ts, 1.5 AS value", "SELECT * FROM missing_table", "SELECT",
    "DELETE FROM orders", "SELECT 1; DROP TABLE orders", "SELECT * INTO t FROM orders", "WITH a AS (SELECT 1) SELECT *",
    "SELECT 1e999 AS value", "SELECT NULL AS value", "SELECT 'a' AS value", "SELECT randomblob(8) AS b",
    "SELECT amount AS value FROM orders", "SELECT " + "(" * 60 + "1" + ")" * 60,
    "SELECT " + "COALESCE(" * 45 + "x" + ", 1)" * 45 + " FROM t", "SELECT 1 AS x WHERE REGEXP_CONTAINS('a', r'(')",
    "SELECT 1 AS x WHERE REGEXP_CONTAINS('aaaaaaaaaaaaaaaaaaaaaaaaaaaaab', r'^(a+)+$')",
]  # fmt: skip
CRON_PARTS = [
    "*", "*/15", "*/0", "0", "2", "23", "24", "29", "30", "31", "32", "L", "LW", "5L", "1#5", "0#6", "1-5", "5-1",
    "MON", "mon-fri", "JAN", "feb", "2,4,6", "?", "-1", "61", "1/2/3", "٣", "", "1_0",
]  # fmt: skip


# Numbers in every notation a person or a spreadsheet might write, and some that only look like numbers.
NUMBERS = st.one_of(
    st.integers().map(str),
    st.integers().map(lambda i: f"{i:_}"),
    st.integers().map(lambda i: f"{i:,}"),
    st.floats().map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:e}"),
    st.decimals().map(str),
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=4),
    st.sampled_from(["1e300", "1e400", "-0", ".5", "5.", "+3", "0x10", "inf", "NaN", "1 000", "3.0", "9" * 5000]),
)
CRONS = st.one_of(
    st.lists(st.sampled_from(CRON_PARTS), min_size=4, max_size=6).map(" ".join),
    st.sampled_from(["0 0 30 2 *", "0 0 31 4 *", "0 2 * * *", "@hourly"]),
    st.text(max_size=20),
)
TIMEZONES = st.one_of(st.timezone_keys(), st.sampled_from(["", "utc", "Mars/Olympus", "../etc", "x" * 300]))
CELLS = st.one_of(st.text(max_size=20), st.sampled_from(NOTABLE), NUMBERS, CRONS, TIMEZONES, st.sampled_from(SQL))
VALID_SQL = [
    "SELECT 1 AS value", "SELECT id, amount FROM orders", "SELECT COUNT(*) AS value FROM orders",
    "SELECT amount AS value FROM orders WHERE id = 1", "SELECT id FROM orders WHERE amount > 1000",
    "SELECT TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL id HOUR) AS ts, amount AS value FROM orders",
]  # fmt: skip
# What each column holds when a person fills it in correctly.
VALID = {
    "name": st.one_of(st.from_regex(r"[a-z0-9_-]{1,10}", fullmatch=True), st.sampled_from(["dup", "Dup"])),
    "enabled": st.sampled_from(["TRUE", "FALSE", "yes", "0"]),
    "type": st.sampled_from(["rows", "threshold", "anomaly", "Threshold"]),
    "sql": st.sampled_from(VALID_SQL),
    "min": st.integers(-5, 5).map(str),
    "max": st.floats(0, 100).map(str),
    "sensitivity": st.sampled_from(["1", "3", "4.5"]),
    "seasonality": st.sampled_from(["none", "day_of_week", "hour_of_day"]),
    "direction": st.sampled_from(["both", "up", "down"]),
    "schedule": st.sampled_from(["*/5 * * * *", "0 2 * * *", "0 9 * * MON-FRI", "30 2 * * *"]),
    "timezone": st.timezone_keys(),
    "severity": st.sampled_from(["critical", "warning", "info"]),
    "channel": st.sampled_from(["#alerts", "C0123ABC"]),
    "owners": st.sampled_from(["U024BE7LH", "ana@example.com, S0614TZR7"]),
    "alert_after": st.integers(1, 3).map(str),
    "renotify_hours": st.sampled_from(["0", "24", "0.5"]),
    "tags": st.sampled_from(["hourly", "Finance, daily"]),
    "export_sheet": st.sampled_from(["late orders", "checks"]),
    "max_gb_billed": st.sampled_from(["1", "10", "0.5"]),
    "runbook": st.just("https://example.com/runbook"),
    "description": st.text(max_size=30),
}
# ... and what they hold when not: the column's own kind of mistake, or anything at all.
WRONG = {"sql": st.sampled_from(SQL), "schedule": CRONS, "timezone": TIMEZONES, "min": NUMBERS, "max": NUMBERS}
WRONG |= dict.fromkeys(["sensitivity", "alert_after", "renotify_hours", "max_gb_billed"], NUMBERS)


def blank_or(right: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), right)


@st.composite
def registries(draw: st.DrawFn) -> str:
    """A registry file: a header (known columns in any order and case, unknown ones, now and then one named
    twice) and rows filled in right or left blank but for a few wrong cells, written as a spreadsheet exports
    them or joined by hand (stray quotes, commas and newlines then shift and split cells)."""
    extra = [c for c in COLUMN_NAMES if c not in ("name", "sql")] + ["notes", "", "名前"]
    header = ["name", "sql", *draw(st.lists(st.sampled_from(extra), max_size=8, unique=True))]
    if draw(st.integers(0, 9)) == 0:
        header.append(draw(st.sampled_from(["sql", "Name", "notes"])))
    header = [draw(st.sampled_from([h, h.upper(), f" {h} "])) for h in draw(st.permutations(header))]
    columns = [h.strip().lower() for h in header]
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [draw(blank_or(VALID[c])) if c in VALID else draw(CELLS) for c in columns]
        row[columns.index("name")] = draw(VALID["name"])
        for i in draw(st.sets(st.integers(0, len(row) - 1), max_size=2)):  # what a person got wrong
            row[i] = draw(st.one_of(WRONG.get(columns[i], CELLS), CELLS))
        rows.append(row)
    if draw(st.booleans()):  # a spreadsheet's export, or a file edited by hand
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        return out.getvalue()
    return "".join(",".join(row) + "\n" for row in [header, *rows])


MOMENT_TEXT = st.one_of(
    st.dates().map(dt.date.isoformat),
    st.datetimes(timezones=st.timezones()).map(dt.datetime.isoformat),
    st.sampled_from(["2026-12-25", "9999-12-31", "0001-01-01T00:00:00+05:00", "2026-13-01", "Christmas", ""]),
    st.text(max_size=12),
)


@st.composite
def exclusion_files(draw: st.DrawFn) -> str:
    """An exclusions.csv: mostly sensible windows, some wrong cells, exported or joined by hand."""
    header = ["check", "from", "to", "reason"]
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = [draw(st.sampled_from(["*", "fine", "daily"])), draw(MOMENT_TEXT), draw(MOMENT_TEXT), draw(CELLS)]
        for i in draw(st.sets(st.integers(0, 3), max_size=1)):
            row[i] = draw(CELLS)
        rows.append(row)
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        return out.getvalue()
    return "".join(",".join(row) + "\n" for row in [header, *rows])


# --- The registry ------------------------------------------------------------------------------------------------

INVALID_MESSAGE = re.compile(r'checks row (\d+) \(name "([^"\n]*)"\): .*column', re.DOTALL)


def read(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checks.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return parse_registry(CsvSource(path).read_rows(), WORKSHEETS)


@given(registries())
def test_any_registry_file_is_checks_and_invalid_rows_naming_row_and_column_or_a_registry_error(text: str) -> None:
    try:
        registry = read(text)
    except RegistryError as exc:  # the header: no name or sql column, a column named twice, a broken quote
        assert re.search(r"column|header", str(exc)), exc
        return
    rows = [c.row_number for c in registry.checks] + [i.row_number for i in registry.invalid]
    assert len(rows) == len(set(rows)), "a row counted twice"
    assert all(row >= 2 for row in rows)
    for row in registry.invalid:
        match = INVALID_MESSAGE.match(row.message)
        assert match, row.message
        assert int(match.group(1)) == row.row_number and match.group(2) == row.name
        assert len(row.message) < 1000
    names = [c.name for c in registry.checks]
    assert len(names) == len(set(names))


@given(exclusion_files(), st.timezone_keys())
def test_any_exclusions_file_is_windows_and_invalid_rows_naming_row_and_column(text: str, zone: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "exclusions.csv").write_text(text, encoding="utf-8", errors="surrogatepass")
        exclusions = parse_exclusions(CsvSource(Path(folder) / "checks.csv").read_exclusions())
    for window in exclusions.windows:
        start, end = window.span(zone)  # in any time zone the check may have
        assert start < end
    for number, message in exclusions.problems:
        assert message.startswith(f"exclusions row {number}: ") and "column" in message, message
        assert len(message) < 1000


# --- Schedules and time ------------------------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2999, 12, 31, 23, 59))


@given(CRONS, st.timezone_keys(), MOMENTS, MOMENTS)
def test_a_schedule_is_refused_or_ticks_at_any_time_in_any_zone(
    expression: str, zone: str, last: dt.datetime, now: dt.datetime
) -> None:
    try:
        check_schedule(expression)
    except ScheduleError:
        return
    check = Check(name="c", sql="SELECT 1", schedule=expression, timezone=zone)
    now, last = now.replace(tzinfo=dt.UTC), last.replace(tzinfo=dt.UTC)
    assert next_tick(check, now) > now
    assert is_due(check, last, now) in (True, False)


@given(st.one_of(MOMENTS.map(dt.datetime.isoformat), st.datetimes().map(dt.datetime.isoformat), st.text()))
def test_now_is_a_moment_from_1970_to_2999_or_a_bad_option(text: str) -> None:
    try:
        value = cli.moment(text)
    except Exception as exc:
        assert type(exc).__name__ == "ArgumentTypeError", exc
        return
    assert cli.EARLIEST <= value < cli.LATEST


# --- Whole runs through the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A warehouse, and a folder to run in (alerts save their charts under charts/ there)."""
    import sqlite3

    folder = tmp_path_factory.mktemp("properties")
    with sqlite3.connect(folder / "warehouse.db") as conn:
        conn.executescript(TABLES)
    return folder


def main(folder: Path, argv: list[str]) -> tuple[int, str, str]:
    """The CLI in this process, in `folder`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: --help, or a bad option
                code = exc.code
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def expected_exit(doc: dict) -> int:
    statuses = {c["status"] for c in doc["checks"]}
    return 2 if statuses & {"error", "invalid"} else 1 if "alert" in statuses else 0


@given(
    registries(),
    st.sampled_from(["2026-11-23T09:00:00Z", "1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z"]),
    exclusion_files(),
)
def test_any_registry_runs_to_its_json_document_and_the_exit_code_its_statuses_give(
    workspace: Path, text: str, now: str, exclusions: str
) -> None:
    (workspace / "checks.csv").write_text(text, encoding="utf-8", errors="surrogatepass")
    (workspace / "exclusions.csv").write_text(exclusions, encoding="utf-8", errors="surrogatepass")
    (workspace / "state.db").unlink(missing_ok=True)
    argv = ["run", "--json", "--checks", "checks.csv", "--warehouse", "sqlite:///warehouse.db"]
    code, out, err = main(workspace, [*argv, "--state", "sqlite:///state.db", "--now", now])
    if code == 3:
        event("the registry could not be read (exit 3)")
        assert out == "" and re.search("column|header|empty", err), err
        return
    doc = strict_json(out)
    for status in {c["status"] for c in doc["checks"]}:
        event(f"a run with {status} checks")  # --hypothesis-show-statistics shows what the runs covered
    assert code == expected_exit(doc), (code, doc["summary"])
    assert sum(doc["summary"].values()) == len(doc["checks"])
    for check in doc["checks"]:
        if check["status"] == "invalid" and check["name"].startswith("_exclusions_row_"):
            assert re.match(r"exclusions row \d+: .*column", check["message"], re.DOTALL), check["message"]
        elif check["status"] == "invalid":
            assert INVALID_MESSAGE.match(check["message"]), check["message"]
    validate_code, validate_out, _ = main(workspace, ["validate", "--json", *argv[2:], "--now", now])
    invalid = {c["name"] for c in doc["checks"] if c["status"] == "invalid"}
    refused = {c["name"] for c in strict_json(validate_out)["checks"] if not c["valid"]}
    assert invalid <= refused, "validate must refuse every row run finds invalid"
    assert validate_code == (1 if refused else 0)


def options() -> st.SearchStrategy[list[str]]:
    """Command lines: the real options with odd values, in any order, and tokens that are no option at all."""
    text = st.text(alphabet=string.printable, max_size=12).filter(lambda t: ".." not in t)
    urls = st.one_of(
        st.sampled_from(["sqlite:///warehouse.db", "sqlite:///", "bigquery://", "bigquery://p", "postgres://x", ""]),
        text.map(lambda t: f"sqlite:///{t.lstrip('/')}"),
        text,
    )
    option = st.one_of(
        st.tuples(st.just("--now"), st.one_of(text, MOMENTS.map(dt.datetime.isoformat))),
        st.tuples(st.sampled_from(["--check", "--tag"]), st.one_of(text, st.sampled_from(["fine", "dup"]))),
        st.tuples(st.just("--checks"), st.one_of(text, st.just("checks.csv"))),
        st.tuples(st.sampled_from(["--warehouse", "--state"]), urls),
        st.tuples(st.sampled_from(["--from", "--to"]), st.one_of(text, MOMENTS.map(dt.datetime.isoformat))),
        st.tuples(st.just("--days"), st.one_of(text, NUMBERS)),
        st.tuples(st.just("--every"), CRONS),
        st.tuples(st.just("--sensitivity"), st.one_of(text, NUMBERS, st.just("2,3,4"))),
        st.one_of(st.sampled_from(["--force", "--dry-run", "--json", "--help", "-x", "--"]), text).map(lambda t: (t,)),
    )
    command = st.sampled_from(["run", "validate", "backtest", "sheet", "", "bogus", "--help"])
    return st.tuples(command, st.lists(option, max_size=6)).map(lambda c: [c[0], *(t for o in c[1] for t in o)])


@given(options())
def test_any_command_line_ends_in_an_exit_code_never_a_crash(workspace: Path, argv: list[str]) -> None:
    (workspace / "checks.csv").write_text("name,sql\nfine,SELECT 1 AS x WHERE 1 = 0\n")
    code, out, err = main(workspace, argv)
    assert code in (0, 1, 2, 3), (code, err)
    if code in (1, 2) or (code == 0 and "--json" in argv and "--help" not in argv and out.startswith("{")):
        strict_json(out)


# --- Values and bodies ------------------------------------------------------------------------------------------

VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**130), max_value=2**130), st.floats(), st.text(),
        st.binary(), st.decimals(), st.dates(), st.datetimes(), st.times(),
        st.datetimes(timezones=st.timezones()), st.integers(9_999, 10_002).map(lambda n: "é" * n),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=10,
)  # fmt: skip


@given(VALUES)
def test_any_value_a_query_returns_encodes_as_valid_json(value: Any) -> None:
    text = json.dumps(json_value(value), allow_nan=False)
    assert strict_json(text) == json_value(value)


def bodies() -> st.SearchStrategy[bytes]:
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=8,
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "checks": st.one_of(st.lists(st.sampled_from(["total", "nope"]), max_size=2), json_values),
            "tags": st.one_of(st.lists(st.text(max_size=8), max_size=2), json_values),
            "force": st.one_of(st.booleans(), json_values),
            "dry_run": st.one_of(st.just(True), json_values),
        },
    )
    as_json = st.one_of(fields, json_values).map(lambda v: json.dumps(v).encode())
    return st.one_of(as_json, st.binary(max_size=64), st.text(max_size=64).map(lambda t: t.encode("utf-8", "replace")))


@pytest.fixture(scope="module")
def body_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bodies")
    (tmp / "checks.csv").write_text(f"{CHECKS_HEADER}total,threshold,SELECT SUM(amount) AS value FROM orders,,100,,,\n")
    settings = {
        "CHECKS_SOURCE": str(tmp / "checks.csv"),
        "WAREHOUSE_URL": f"sqlite:///{make_warehouse(tmp / 'warehouse.db')}",
        "STATE_URL": f"sqlite:///{tmp / 'state.db'}",
    }
    with function_server(settings, tmp / "server.log") as url:
        yield url


@given(bodies())
def test_any_request_body_is_answered_200_or_400_with_json(body_server: str, body: bytes) -> None:
    status, doc, headers = call(body_server, "POST", body)
    assert headers["Content-Type"] == "application/json"
    assert status in (200, 400), (status, doc)
    if status == 200:
        assert set(doc) == {"run_id", "started_at", "finished_at", "summary", "checks"}
    else:
        assert doc["error"]
