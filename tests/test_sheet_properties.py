"""Properties of what the monitor writes to a sheet, whatever the sheet or the data holds (hypothesis)."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import math
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from anomaly_monitor.columns import BY_NAME
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.registry import RowError, normalize_header, normalize_rows, parse_check, parse_registry
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.sheet_layout import CHECKS, serial
from anomaly_monitor.sources.sheet_setup import set_up
from anomaly_monitor.sources.sheets import SheetsSource, cell
from tests.sheets_server import SheetsServer, serving
from tests.sheets_ui import Refused, type_in

# -- typed cells ---------------------------------------------------------------------------------------------------

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from(["=1+1", '=HYPERLINK("http://x")', "+41 79", "-5 days", "@channel", "'quoted"]),
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))])),
    st.dates(),
)


def finite(value: int | float | decimal.Decimal) -> bool:
    return value.is_finite() if isinstance(value, decimal.Decimal) else math.isfinite(value)


@given(value=values, zone=st.sampled_from(["UTC", "Etc/GMT", "America/New_York", "Asia/Kolkata", "Not/AZone"]))
def test_a_cell_is_typed_json_and_never_a_formula(value, zone) -> None:
    written = cell(value, zone)
    text = json.dumps(written, allow_nan=False)  # the API takes JSON; NaN or infinity would break the whole batch
    assert "formulaValue" not in text
    kind = next(iter(written.get("userEnteredValue", {})), None)
    if value is None or value == "":
        assert written == {}
    elif isinstance(value, str):
        assert written == {"userEnteredValue": {"stringValue": value}}  # =, +, -, @ stay text
    elif isinstance(value, bool):
        assert kind == "boolValue"
    elif isinstance(value, dt.datetime):
        assert kind == "numberValue" and written["userEnteredFormat"]["numberFormat"]["type"] == "DATE_TIME"
    elif isinstance(value, int | float | decimal.Decimal) and finite(value) and abs(value) <= 2**53:
        assert kind == "numberValue" and written["userEnteredValue"]["numberValue"] == float(value)
    else:
        assert kind in ("numberValue", "stringValue")


@given(
    moment=st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2999, 12, 31), timezones=st.just(dt.UTC)
    )
)
def test_a_date_time_is_the_serial_of_its_local_time(moment) -> None:
    days = serial(moment, "America/New_York")
    local = moment.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).replace(tzinfo=None)
    assert abs(dt.datetime(1899, 12, 30) + dt.timedelta(days=days) - local) < dt.timedelta(milliseconds=1)


# -- sheet init on whatever a registry looks like -------------------------------------------------------------------

extra_columns = st.sampled_from(["notes", "owner team", "ticket", ""])
spelled = st.sampled_from([str.lower, str.upper, str.title, lambda s: f" {s} "])


@st.composite
def registries(draw) -> list[list[str]]:
    known = draw(st.lists(st.sampled_from(CHECKS.names), unique=True, max_size=8))
    extra = draw(st.lists(extra_columns, max_size=2))
    header = [draw(spelled)(name) for name in known] + extra
    header = draw(st.permutations(header))
    if len({normalize_header(h) for h in header if h.strip()}) != len([h for h in header if h.strip()]):
        header = list(dict.fromkeys(header))  # no column named twice: that registry is refused, not set up
    cells = st.sampled_from(["", "", "x", "late_orders", "SELECT 1", "TRUE", "no", "3", "=SUM(A1)"])
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=4))
    return [header, *rows]


@pytest.fixture(scope="module")
def server():
    with serving() as running:
        yield running


def seeded(server: SheetsServer, grid: list[list[str]]) -> tuple[str, SheetsSource]:
    key = uuid.uuid4().hex
    book = server.create(key)
    tab = book.sheets[0]
    tab.properties["title"] = "checks"
    for r, row in enumerate(grid):
        for c, text in enumerate(row):
            if text:
                tab.cells[(r, c)] = {"userEnteredValue": {"stringValue": text}}
    return key, SheetsSource.from_url(f"sheets://{key}", Settings(sheets_api_url=server.url))


def checks_of(source: SheetsSource) -> list[tuple[str, bool]] | None:
    try:
        registry = parse_registry(source.read_rows())
    except RegistryError:
        return None
    return [(c.name, c.enabled) for c in registry.checks]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=registries())
def test_sheet_init_keeps_every_cell_adds_what_is_missing_and_is_idempotent(server, grid) -> None:
    key, source = seeded(server, grid)
    before = checks_of(source)
    cells = copy.deepcopy(server.spreadsheets[key].sheet("checks").cells)
    set_up(source, Settings())
    after = server.spreadsheets[key].sheet("checks")
    header = [normalize_header(h) for h in server.values(key, "checks!1:1")[0]]
    assert set(CHECKS.names) <= set(header)  # every column, once
    assert len([h for h in header if h in CHECKS.names]) == len(CHECKS.names)
    enabled = header.index("enabled")
    for (r, c), data in cells.items():  # nothing a person wrote is moved or overwritten
        assert after.cells[(r, c)]["userEnteredValue"] == data["userEnteredValue"], (r, c)
    added = {(r, c): d.get("userEnteredValue") for (r, c), d in after.cells.items() if (r, c) not in cells and r > 0}
    added = {k: v for k, v in added.items() if v}
    if not cells:  # an empty tab gets the example check
        assert {r for r, _ in added} == {1}
    else:  # otherwise the only new values are ticks in a blank `enabled`
        assert all(c == enabled and v == {"boolValue": True} for (_, c), v in added.items())
    if before is not None and any(any(row) for row in grid[1:]):
        assert checks_of(source) == before  # the registry means the same
    calls = len(server.calls)
    again = set_up(source, Settings())
    assert not again.changes and "spreadsheets.batchUpdate" not in [c.method for c in server.calls[calls:]]


# -- the sheet refuses what the registry would call invalid ---------------------------------------------------------

VALIDATED = [c.name for i, c in enumerate(CHECKS.columns) if c.validation(i)]
typed = st.one_of(
    st.sampled_from(
        [
            "",
            "TRUE",
            "false",
            "rows",
            "Threshold",
            "anomaly",
            "urgnet",
            "critical",
            "INFO",
            "none",
            "day_of_week",
            "up",
            "sideways",
            "0",
            "-1",
            "1",
            "1.5",
            "3",
            "1e3",
            "1_000",
            "٣",
            "ten",
            "24",
            "example_stuck_orders",
            "other_check",
            "Upper_Case",
            "a" * 65,
            "ok-name_2",
            "_registry",
            "row-3",
            "row-3b",
            "https://x.io/run",
            "ftp://x",
            "http://a b",
            "=1+1",
            "'7",
            "2026-12-24",
        ]
    ),
    st.from_regex(r"[-+]?\d{1,4}(\.\d{1,3})?", fullmatch=True),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def set_up_sheet(server):
    """A sheet after `sheet init`, with a second check below the example (for uniqueness of names)."""
    key, source = seeded(server, [])
    set_up(source, Settings())
    checks = server.spreadsheets[key].sheet("checks")
    for c, value in enumerate(["other_check", "TRUE", "rows", "SELECT 1"]):
        checks.cells[(2, c)] = {**checks.cells.get((2, c), {}), **cell(value if value != "TRUE" else True)}
    return key, source, server.spreadsheets[key].snapshot()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(VALIDATED), text=typed)
def test_what_the_sheet_accepts_the_registry_accepts(server, set_up_sheet, column, text) -> None:
    key, _, pristine = set_up_sheet
    if text == "" and BY_NAME[column].required:
        return  # clearing a cell is never refused by a validation rule; the run reports the missing value
    server.spreadsheets[key] = pristine.snapshot()
    sheet = server.spreadsheets[key].sheet("checks")
    index = CHECKS.names.index(column)
    try:
        type_in(sheet, 1, index, text, rule_origin=(1, index))
    except Refused as refused:
        event("refused")
        assert str(refused).startswith(f"{column}: ")  # the help text names the column and what it takes
        return
    event("accepted")
    values = server.values(key, "checks")
    rows = normalize_rows(values[0], values[1:])
    try:
        parse_check(rows[0], 2)
    except RowError as exc:
        assert f'column "{column}"' not in str(exc), f"the sheet took {text!r} for {column}, the registry did not"
    names = [r["name"] for r in rows if r["name"]]
    assert len(names) == len(set(names)), "the sheet took a duplicate name"


@pytest.mark.parametrize("column", VALIDATED)
def test_the_sheet_accepts_every_value_the_registry_documents(server, set_up_sheet, column) -> None:
    key, _, pristine = set_up_sheet
    spec = BY_NAME[column]
    good = list(spec.choices) or {
        "enabled": ["TRUE", "FALSE"],
        "name": ["late_orders"],
        "runbook": ["https://x.io"],
    }.get(column, [spec.example, f"{(spec.minimum or 0) + 1:g}"])
    for text in good:
        server.spreadsheets[key] = pristine.snapshot()
        sheet = server.spreadsheets[key].sheet("checks")
        index = CHECKS.names.index(column)
        type_in(sheet, 1, index, text, rule_origin=(1, index))  # not refused
