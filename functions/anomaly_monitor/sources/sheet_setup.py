"""`sheet init`: creates or upgrades the spreadsheet's worksheets in place, idempotently.

Three reads (which tabs exist with their formats and protections; the header rows' text, notes and validations;
the checks' values), then at most one batchUpdate holding every change, so a set-up is applied whole or not at
all. A sheet that is already set up gets no write. Nothing a person wrote is removed, reordered or changed in meaning:
missing columns are appended, blank `enabled` cells of existing checks are ticked (blank already meant enabled,
and a checkbox would otherwise show them unticked), and yes/no or 1/0 become the checkbox's TRUE/FALSE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anomaly_monitor.display import count
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.registry import FALSE, TRUE, normalize_header, refuse_repeated_columns
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.sheet_layout import (
    BOLD,
    CHECKS,
    EXAMPLE_CHECK,
    EXCLUSIONS,
    FIRST_STATUS_LINE,
    STATUS,
    STATUS_HEADER,
    Tab,
    column_letter,
    status_formats,
)
from anomaly_monitor.sources.sheets import (
    SheetsSource,
    add_sheets,
    cell,
    column_widths,
    explain,
    fit,
    quoted,
    status_tab_layout,
)

METADATA_FIELDS = "properties.timeZone,sheets(properties,conditionalFormats,protectedRanges)"
HEADER_FIELDS = "sheets(properties.title,data(rowData.values(formattedValue,note,dataValidation)))"
HEADER_CELL_FIELDS = "userEnteredValue,note,userEnteredFormat.textFormat.bold"


@dataclass
class TabState:
    """What a worksheet holds that the set-up looks at."""

    props: dict[str, Any]
    header: list[str] = field(default_factory=list)  # row-1 text
    notes: list[str] = field(default_factory=list)  # row-1 notes
    validations: list[dict[str, Any] | None] = field(default_factory=list)  # row 2, per column
    conditional_formats: list[dict[str, Any]] = field(default_factory=list)
    protected: list[dict[str, Any]] = field(default_factory=list)
    values: list[list[str]] | None = None  # every row, for the checks tab
    empty: bool = False


@dataclass
class Setup:
    """The changes a set-up makes: one batchUpdate's requests, and each change in words."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    reads: int = 0

    def change(self, what: str, requests: list[dict[str, Any]]) -> None:
        if requests:
            self.requests += requests
            self.changes.append(what)


def set_up(source: SheetsSource, settings: Settings) -> Setup:
    """Reads the spreadsheet, plans what is missing, and applies it in one batchUpdate."""
    key, http, account = source.key, source.http, source.client.account
    titles = {"checks": settings.checks_worksheet, "status": settings.status_worksheet}
    titles["exclusions"] = settings.exclusions_worksheet
    try:
        setup = Setup(reads=1)
        meta = http.fetch_sheet_metadata(key, params={"fields": METADATA_FIELDS})
        tabs = {s["properties"]["title"]: TabState(s["properties"]) for s in meta.get("sheets", [])}
        for sheet in meta.get("sheets", []):
            state = tabs[sheet["properties"]["title"]]
            state.conditional_formats = sheet.get("conditionalFormats", [])
            state.protected = sheet.get("protectedRanges", [])
        present = [title for title in titles.values() if title in tabs]
        if present:
            setup.reads += 1
            ranges = [f"{quoted(title)}!1:2" for title in present]
            grids = http.spreadsheets_get(
                key, params={"includeGridData": "true", "ranges": ranges, "fields": HEADER_FIELDS}
            )
            for sheet in grids.get("sheets", []):
                read_header(tabs[sheet["properties"]["title"]], sheet.get("data", []))
        reuse = reusable_first_tab(tabs, titles)
        looked_at = titles["checks"] if titles["checks"] in tabs else reuse
        if looked_at is not None:
            setup.reads += 1
            values = http.values_get(key, quoted(looked_at)).get("values", [])
            tabs[looked_at].values, tabs[looked_at].empty = values, not any(any(row) for row in values)
        plan(setup, tabs, titles, reuse if reuse is not None and tabs[reuse].empty else None)
        refuse_protected(setup.requests, tabs, key, account)
        if setup.requests:
            http.batch_update(key, {"requests": setup.requests})
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(explain(exc, key, account, writing=True)) from exc
    return setup


def read_header(state: TabState, data: list[dict[str, Any]]) -> None:
    rows = [row.get("values", []) for grid in data for row in grid.get("rowData", [])]
    first = rows[0] if rows else []
    second = rows[1] if len(rows) > 1 else []
    state.header = [c.get("formattedValue", "") for c in first]
    state.notes = [c.get("note", "") for c in first]
    state.validations = [c.get("dataValidation") for c in second]


def reusable_first_tab(tabs: dict[str, TabState], titles: dict[str, str]) -> str | None:
    """A brand-new spreadsheet's only tab ("Sheet1", whatever the locale calls it) becomes the checks tab if empty."""
    if titles["checks"] in tabs or len(tabs) != 1:
        return None
    (title,) = tabs
    return None if title in titles.values() else title


def plan(setup: Setup, tabs: dict[str, TabState], titles: dict[str, str], rename: str | None) -> None:
    """Appends to `setup` every request the spreadsheet needs to match the layout."""
    checks_title = titles["checks"]
    if rename is not None:
        state = tabs.pop(rename)
        state.props = {**state.props, "title": checks_title}
        tabs[checks_title] = state
        setup.change(
            f"renamed the empty worksheet {rename!r} to {checks_title!r}",
            [
                {
                    "updateSheetProperties": {
                        "properties": {"sheetId": state.props["sheetId"], "title": checks_title},
                        "fields": "title",
                    }
                }
            ],
        )
    positions = upgrade_tab(setup, tabs, checks_title, CHECKS)
    upgrade_tab(setup, tabs, titles["exclusions"], EXCLUSIONS)
    checks = tabs[checks_title]
    if checks.values is None or checks.empty:
        setup.change(f"{checks_title}: wrote an example check (disabled)", example_check(checks))
    else:
        tick_blank_enabled(setup, checks, positions)
    status_tab(setup, tabs, titles["status"])


def upgrade_tab(setup: Setup, tabs: dict[str, TabState], title: str, tab: Tab) -> dict[str, int]:
    """Creates the tab, or appends the columns it lacks; notes, validations, widths and the frozen header.

    Returns where each of the tab's columns is (0-based)."""
    if title not in tabs:
        requests, new = add_sheets([title], {t: s.props for t, s in tabs.items()}, max(26, len(tab.columns)))
        tabs[title] = TabState(new[title], empty=True)
        setup.change(f"created worksheet {title!r}", requests)
    state = tabs[title]
    sheet_id = state.props["sheetId"]
    have = [normalize_header(h) for h in state.header]
    # a column named twice: which one would get the rules and the ticks? the monitor never guesses
    refuse_repeated_columns(have, tab.names, f"the header of worksheet {title!r}")
    last = max((i for i, h in enumerate(have) if h), default=-1)
    missing = [c for c in tab.columns if c.name not in have]
    positions = {name: i for i, name in enumerate(have) if name}
    positions |= {c.name: last + 1 + i for i, c in enumerate(missing)}
    if missing:
        start = last + 1
        cells = [cell(c.name) | {"note": c.note, "userEnteredFormat": BOLD} for c in missing]
        requests = fit(state.props, 0, start + len(missing))
        requests.append(
            {
                "updateCells": {
                    "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": start},
                    "rows": [{"values": cells}],
                    "fields": HEADER_CELL_FIELDS,
                }
            }
        )
        requests += column_widths(sheet_id, {positions[c.name]: c.width for c in missing})
        requests += [
            {
                "repeatCell": {
                    "range": column_range(sheet_id, positions[c.name]),
                    "cell": {"userEnteredFormat": {"numberFormat": c.number_format}},
                    "fields": "userEnteredFormat.numberFormat",
                }
            }
            for c in missing
            if c.number_format
        ]
        setup.change(f"{title}: added column{'s' * (len(missing) > 1)} {', '.join(c.name for c in missing)}", requests)
    stale = [c for c in tab.columns if c not in missing and at(state.notes, positions[c.name]) != c.note]
    setup.change(
        f"{title}: notes on the header of {', '.join(c.name for c in stale)}",
        [
            {
                "updateCells": {
                    "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": positions[c.name]},
                    "rows": [{"values": [{"note": c.note}]}],
                    "fields": "note",
                }
            }
            for c in stale
        ],
    )
    rules = {c.name: c.validation(positions[c.name]) for c in tab.columns}
    wrong = [
        c.name
        for c in tab.columns
        if rules[c.name] and not same_rule(at(state.validations, positions[c.name]), rules[c.name])
    ]
    setup.change(
        f"{title}: validation of {', '.join(wrong)}",
        [
            {"setDataValidation": {"range": column_range(sheet_id, positions[name]), "rule": rules[name]}}
            for name in wrong
        ],
    )
    freeze(setup, state, title, tab.frozen_rows)
    return positions


def status_tab(setup: Setup, tabs: dict[str, TabState], title: str) -> None:
    """The status worksheet: created with its first line and header, or given its conditional formats back."""
    if title not in tabs:
        requests, new = add_sheets([title], {t: s.props for t, s in tabs.items()})
        sheet_id = new[title]["sheetId"]
        header = [cell(FIRST_STATUS_LINE)], [cell(name) | {"userEnteredFormat": BOLD} for name in STATUS_HEADER]
        requests.append(
            {
                "updateCells": {
                    "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": 0},
                    "rows": [{"values": values} for values in header],
                    "fields": HEADER_CELL_FIELDS,
                }
            }
        )
        setup.change(f"created worksheet {title!r} (colours by status)", requests + status_tab_layout(sheet_id))
        return
    state = tabs[title]
    sheet_id = state.props["sheetId"]
    wanted = status_formats(sheet_id)
    if [rule_key(r) for r in state.conditional_formats] != [rule_key(r) for r in wanted]:
        requests = [
            {"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": 0}} for _ in state.conditional_formats
        ]
        requests += [{"addConditionalFormatRule": {"rule": rule, "index": i}} for i, rule in enumerate(wanted)]
        setup.change(f"{title}: colours by status", requests)
    freeze(setup, state, title, STATUS.frozen_rows)


def freeze(setup: Setup, state: TabState, title: str, rows: int) -> None:
    if state.props.get("gridProperties", {}).get("frozenRowCount", 0) >= rows:
        return
    request = {
        "updateSheetProperties": {
            "properties": {"sheetId": state.props["sheetId"], "gridProperties": {"frozenRowCount": rows}},
            "fields": "gridProperties.frozenRowCount",
        }
    }
    setup.change(f"{title}: froze the header row{'s' * (rows > 1)}", [request])


def example_check(state: TabState) -> list[dict[str, Any]]:
    """One disabled example row under the header of an empty checks tab."""
    row = [cell(EXAMPLE_CHECK.get(name)) for name in CHECKS.names]
    start = {"sheetId": state.props["sheetId"], "rowIndex": 1, "columnIndex": 0}
    return [{"updateCells": {"start": start, "rows": [{"values": row}], "fields": "userEnteredValue"}}]


def tick_blank_enabled(setup: Setup, state: TabState, positions: dict[str, int]) -> None:
    """Ticks the checkbox of checks whose `enabled` is blank (or whose column was just added), and turns the other
    spellings the registry reads (yes/no, 1/0, ...) into the checkbox's TRUE/FALSE, which mean the same."""
    name, enabled = positions["name"], positions["enabled"]
    blank, spelled = [], []
    for i, row in enumerate((state.values or [])[1:], start=1):
        text = str(at(row, enabled)).strip()
        if not str(at(row, name)).strip():
            continue
        if not text:
            blank.append((i, True))
        elif text not in ("TRUE", "FALSE") and text.lower() in TRUE | FALSE:
            spelled.append((i, text.lower() in TRUE))
    for rows, what in (
        (blank, f"ticked enabled in {count(len(blank), 'row')} where it was blank (blank already meant enabled)"),
        (spelled, f"enabled as a checkbox in {count(len(spelled), 'row')} written yes/no or 1/0 (same meaning)"),
    ):
        setup.change(
            f"{state.props['title']}: {what}",
            [
                {
                    "updateCells": {
                        "start": {"sheetId": state.props["sheetId"], "rowIndex": i, "columnIndex": enabled},
                        "rows": [{"values": [cell(value)]}],
                        "fields": "userEnteredValue",
                    }
                }
                for i, value in rows
            ],
        )


def column_range(sheet_id: int, index: int) -> dict[str, int]:
    """Every row of one column below the header (open-ended, so rows added later are covered)."""
    return {"sheetId": sheet_id, "startRowIndex": 1, "startColumnIndex": index, "endColumnIndex": index + 1}


def at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) and items[index] is not None else ""


def same_rule(have: Any, want: dict[str, Any] | None) -> bool:
    """Equal as the API returns them (false booleans are left out of its answers)."""

    def key(rule: Any) -> Any:
        if not rule:
            return None
        return (
            rule.get("condition"),
            rule.get("inputMessage", ""),
            bool(rule.get("strict")),
            bool(rule.get("showCustomUi")),
        )

    return key(have) == key(want)


def rule_key(rule: dict[str, Any]) -> Any:
    """What makes a conditional format rule ours: where it starts and its condition (colours a person changed are
    kept, and an end the API fills in for an open range does not count)."""
    condition = rule.get("booleanRule", {}).get("condition")
    corners = ("sheetId", "startRowIndex", "startColumnIndex", "endColumnIndex")
    return [tuple(r.get(k, 0) for k in corners) for r in rule.get("ranges", [])], condition


def refuse_protected(requests: list[dict[str, Any]], tabs: dict[str, TabState], key: str, account: str) -> None:
    """Names a protected range the set-up would write to, before writing anything."""
    by_id = {state.props["sheetId"]: state for state in tabs.values()}
    for request in requests:
        sheet_id, area = footprint(request)
        state = by_id.get(sheet_id)
        if state is None:
            continue
        for protected in state.protected:
            if protected.get("requestingUserCanEdit", True) or protected.get("warningOnly"):
                continue
            where = protected.get("range", {})
            whole = not any(k in where for k in ("startRowIndex", "endRowIndex", "startColumnIndex", "endColumnIndex"))
            if whole or (area is not None and overlaps(area, where)):
                what = protected.get("description") or ("the whole tab" if whole else a1(where))
                raise RegistryError(
                    f"spreadsheet {key}: worksheet {state.props['title']!r} is protected ({what}) and {account} is not "
                    "among its editors: add it (Data > Protect sheets and ranges) or remove the protection, then "
                    "run sheet init again"
                )


def footprint(request: dict[str, Any]) -> tuple[int | None, dict[str, int] | None]:
    """The sheet a request changes and the cells it writes (None: the sheet's structure or formats)."""
    ((kind, body),) = request.items()
    if kind == "updateCells":
        if "range" in body:
            return body["range"]["sheetId"], body["range"]
        start, rows = body["start"], body["rows"]
        width = max((len(r.get("values", [])) for r in rows), default=0)
        return start["sheetId"], {
            "startRowIndex": start["rowIndex"],
            "endRowIndex": start["rowIndex"] + len(rows),
            "startColumnIndex": start["columnIndex"],
            "endColumnIndex": start["columnIndex"] + width,
        }
    if kind in ("repeatCell", "setDataValidation"):
        return body["range"]["sheetId"], body["range"]
    if kind == "updateDimensionProperties":
        return body["range"]["sheetId"], None
    if kind in ("updateSheetProperties", "addSheet"):
        return body["properties"].get("sheetId"), None
    if kind == "addConditionalFormatRule":
        return body["rule"]["ranges"][0]["sheetId"], None
    return body.get("sheetId"), None


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    inf = float("inf")
    for start, end in (("startRowIndex", "endRowIndex"), ("startColumnIndex", "endColumnIndex")):
        if max(a.get(start, 0), b.get(start, 0)) >= min(a.get(end, inf), b.get(end, inf)):
            return False
    return True


def a1(area: dict[str, int]) -> str:
    first = f"{column_letter(area.get('startColumnIndex', 0))}{area.get('startRowIndex', 0) + 1}"
    if "endColumnIndex" not in area or "endRowIndex" not in area:
        return f"from {first}"
    return f"{first}:{column_letter(area['endColumnIndex'] - 1)}{area['endRowIndex']}"
