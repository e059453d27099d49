"""The sheet's layout and the registry cannot drift apart: one definition of the columns, checked both ways."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from anomaly_monitor.columns import COLUMNS, Kind
from anomaly_monitor.models import Check
from anomaly_monitor.sources.sheet_layout import CHECKS, STATUS, column_letter, serial
from tests.servers import ROOT as REPO


def test_the_columns_are_the_fields_of_a_check_in_readme_order() -> None:
    fields = [f.name for f in dataclasses.fields(Check) if f.name != "row_number"]
    assert sorted(c.name for c in COLUMNS) == sorted(fields)
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Check registry") : readme.index("### Command line")]
    documented = [n for cell in re.findall(r"^\| `([^|]+)` \|", table, re.M) for n in re.findall(r"[a-z_]+", cell)]
    assert documented == [c.name for c in COLUMNS]


def test_each_default_in_the_notes_is_the_checks_default() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Check)}
    for column in COLUMNS:
        if column.kind in (Kind.CHOICE, Kind.FLAG) or column.name in ("sensitivity", "alert_after", "timezone"):
            assert column.default == str(defaults[column.name]).replace("True", "TRUE").removesuffix(".0")
        if column.kind is Kind.CHOICE:
            assert column.example in column.choices


def test_every_validated_column_names_its_own_cells() -> None:
    for index, column in enumerate(CHECKS.columns):
        rule = column.validation(index)
        if rule and rule["condition"]["type"] == "CUSTOM_FORMULA":
            formula = rule["condition"]["values"][0]["userEnteredValue"]
            assert set(re.findall(r"\b([A-Z]{1,2})\$?2\b", formula)) == {column_letter(index)}, formula


def test_column_letters_and_serial_dates() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 701, 702)] == ["A", "Z", "AA", "AZ", "ZZ", "AAA"]
    assert serial(dt.datetime(1900, 1, 1, 12, tzinfo=dt.UTC), "UTC") == 2.5  # the API's documented example
    summer = serial(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC), "Europe/London") - 46204
    assert abs(summer - 13 / 24) < 1e-9  # 13:00 in London (BST)
    assert STATUS.header_row == 1 and STATUS.frozen_rows == 2
