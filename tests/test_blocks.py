"""The Block Kit formatter against stored JSON fixtures (OVERRIDE=true rewrites them) and Slack's limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from anomaly_monitor.alerts import for_notice
from anomaly_monitor.models import Check, CheckResult, CheckType, Severity, Status
from anomaly_monitor.notices import REGISTRY, MessageRef, Notice, NoticeKind
from anomaly_monitor.notifiers import blocks
from anomaly_monitor.notifiers.blocks import escape

FIXTURES = Path(__file__).parent / "fixtures" / "blocks"
SINCE = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2024, 5, 2, 11, 15, tzinfo=dt.UTC)
REF = MessageRef("C0ALERTS", "1700000000.000100")
USER_IDS = {"ana@example.com": "U0ANA"}


def assert_matches_fixture(name: str, message: dict[str, Any], folder: Path = FIXTURES) -> None:
    """The message equals its stored fixture, whose blocks Slack's own models accept; OVERRIDE=true rewrites it.

    A missing fixture fails: a new case is stored only when asked for (OVERRIDE=true), then read and reviewed."""
    path = folder / f"{name}.json"
    if os.environ.get("OVERRIDE", "").lower() == "true":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(message, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not path.exists():
        pytest.fail(f"no fixture {path}: run with OVERRIDE=true to write it, then review it before committing")
    stored = json.loads(path.read_text(encoding="utf-8"))
    for block in stored["blocks"]:
        Block.parse(block).validate_json()  # raises SlackObjectFormationError beyond Slack's limits
    assert message == stored


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    assert 0 < len(message["text"]) <= 40_000
    assert 0 < len(message["blocks"]) <= 50
    for block in message["blocks"]:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= 3000
            for item in block.get("fields", []):
                assert len(item["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])


def late_settle(**changes: Any) -> Check:
    check = Check(
        name="late_settle",
        sql="SELECT order_id, merchant_id, amount FROM orders",
        severity=Severity.CRITICAL,
        owners=("U0PAYMENTS", "S0DATA", "ana@example.com", "nobody@example.com"),
        runbook="https://wiki.example.com/runbooks/late-settle?team=payments&v=2",
        description="Orders authorised but not settled or voided within 7 days.",
        channel="#payments",
    )
    return dataclasses.replace(check, **changes)


def rows_result(check: Check, rows: list[dict[str, Any]], row_count: int) -> CheckResult:
    noun = "row" if row_count == 1 else "rows"
    return CheckResult(
        check.name,
        "rows",
        Status.ALERT,
        f"{row_count:,} {noun} returned",
        float(row_count),
        row_count,
        rows,
        check=check,
    )


ORDERS = [
    {"order_id": 1, "merchant_id": 4, "amount": 120.5, "authorised_at": "2024-04-20 10:00:00"},
    {"order_id": 4, "merchant_id": 1, "amount": 80.0, "authorised_at": "2024-04-21 08:30:00"},
    {"order_id": 6, "merchant_id": 4, "amount": 15.25, "authorised_at": "2024-04-22 17:45:00"},
]


def notice(kind: NoticeKind, check: Check, result: CheckResult, runs: int = 1, problem: str | None = None) -> Notice:
    ref = None if kind is NoticeKind.OPENED else REF
    return Notice(
        kind=kind,
        check=check,
        result=result,
        ref=ref,
        since=SINCE,
        failing_runs=runs,
        problem=problem or result.message,
        at=NOW,
    )


def render(notice: Notice, user_ids: dict[str, str] | None = None) -> dict[str, Any]:
    """The message a notice posts, as the Slack notifier builds it: the alert body once, then Block Kit."""
    return blocks.render(for_notice(notice), user_ids)


def render_resolved(notice: Notice, user_ids: dict[str, str] | None = None) -> dict[str, Any]:
    return blocks.render_resolved(for_notice(notice), user_ids)


def threshold_check() -> Check:
    return Check(
        name="daily_revenue",
        sql="SELECT SUM(amount) AS value FROM orders",
        type=CheckType.THRESHOLD,
        min=1000.0,
        severity=Severity.WARNING,
        owners=("U0FINANCE",),
    )


def threshold_result(check: Check) -> CheckResult:
    return CheckResult(
        check.name,
        "threshold",
        Status.ALERT,
        "215.75 is below the minimum 1,000",
        215.75,
        1,
        expected=(1000.0, None),
        check=check,
    )


def error_result(check: Check) -> CheckResult:
    message = "SQLite rejected the translated query: no such table: orders"
    return CheckResult(check.name, check.type, Status.ERROR, message, check=check)


def ok_result(check: Check) -> CheckResult:
    return CheckResult(check.name, "rows", Status.OK, "no rows returned", 0.0, 0, check=check)


def grouped_notice() -> Notice:
    """One incident for three checks that failed for one cause outside their SQL."""
    group = Check(name="cause:warehouse", sql="", severity=Severity.CRITICAL)
    result = CheckResult(group.name, None, Status.ERROR, "the warehouse cannot be reached", check=group)
    members = ("late_settle", "daily_revenue", "signups_per_hour")
    return dataclasses.replace(notice(NoticeKind.OPENED, group, result), members=members)


CASES = {
    "rows_alert": lambda: notice(NoticeKind.OPENED, late_settle(), rows_result(late_settle(), ORDERS, 3)),
    "threshold_alert": lambda: notice(NoticeKind.OPENED, threshold_check(), threshold_result(threshold_check())),
    "anomaly_alert": lambda: notice(
        NoticeKind.OPENED,
        check := Check(
            name="signups_per_hour",
            sql="SELECT ts, value FROM signups",
            type=CheckType.ANOMALY,
            severity=Severity.INFO,
        ),
        CheckResult(
            check.name,
            "anomaly",
            Status.ALERT,
            "12 is below the expected range 40.5 to 61.25 (3 robust deviations, 24 points)",
            12.0,
            25,
            expected=(40.5, 61.25),
            check=check,
        ),
    ),
    "query_error": lambda: notice(NoticeKind.OPENED, late_settle(), error_result(late_settle())),
    "reminder": lambda: notice(NoticeKind.REMINDER, late_settle(), rows_result(late_settle(), ORDERS[:2], 2), 27),
    "changed_to_error": lambda: notice(NoticeKind.CHANGED, late_settle(), error_result(late_settle()), 5),
    "changed_to_alert": lambda: notice(NoticeKind.CHANGED, late_settle(), rows_result(late_settle(), ORDERS, 3), 6),
    "resolved_reply": lambda: notice(
        NoticeKind.RESOLVED, late_settle(), ok_result(late_settle()), 27, "3 rows returned"
    ),
    "missed": lambda: dataclasses.replace(
        notice(NoticeKind.MISSED, late_settle(), ok_result(late_settle()), 4, "3 rows returned"), ref=None, until=NOW
    ),
    "grouped_error": lambda: grouped_notice(),
    "registry_error": lambda: notice(
        NoticeKind.OPENED,
        registry := Check(name=REGISTRY, sql="", severity=Severity.CRITICAL, description="No check ran."),
        CheckResult(registry.name, None, Status.ERROR, "spreadsheet KEY is not shared with the app", check=registry),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_notice_renders_as_stored_fixture(name: str) -> None:
    message = render(CASES[name](), USER_IDS)
    assert_within_slack_limits(message)
    assert_matches_fixture(name, message)


def test_a_reply_whose_thread_is_gone_starts_a_message_that_says_so() -> None:
    message = blocks.render_moved(for_notice(CASES["reminder"]()), USER_IDS)
    assert_within_slack_limits(message)
    assert_matches_fixture("moved_reminder", message)
    assert [b["type"] for b in message["blocks"][:3]] == ["header", "context", "section"]
    assert "is gone; it continues here" in message["blocks"][1]["elements"][0]["text"]


def test_a_message_that_may_repeat_says_so_within_the_block_limit() -> None:
    body = {"text": "x", "blocks": [blocks.section(str(i)).to_dict() for i in range(50)]}
    warned = blocks.with_repeat_warning(body)
    assert len(warned["blocks"]) == 50 and "may repeat an earlier message" in json.dumps(warned["blocks"][-1])


def test_resolved_update_renders_as_stored_fixture() -> None:
    message = render_resolved(CASES["resolved_reply"](), USER_IDS)
    assert_within_slack_limits(message)
    assert_matches_fixture("resolved_update", message)
    assert message["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"


def hostile_rows(n: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "order_id": i,
            "note": "<!channel> <@U0BOSS> & <https://evil.example|click> ``` *bold* " + "x" * 500,
            **{f"wide_column_{c:02d}": "y" * 300 for c in range(30)},
        }
        for i in range(n)
    ]


def test_huge_hostile_rows_result_renders_as_stored_fixture() -> None:
    check = late_settle(name="hostile", description="<!here> & friends")
    message = render(notice(NoticeKind.OPENED, check, rows_result(check, hostile_rows(), 10_000)), USER_IDS)
    assert_within_slack_limits(message)
    assert_matches_fixture("hostile_rows", message)


def test_hostile_cells_mention_nobody() -> None:
    check = late_settle(name="hostile", description="<!here> & friends")
    message = render(notice(NoticeKind.OPENED, check, rows_result(check, hostile_rows(), 10_000)), USER_IDS)
    everything = json.dumps(message, ensure_ascii=False)
    for raw in ("<!channel>", "<!here>", "<@U0BOSS>", "<https://evil"):
        assert raw not in everything
    assert "&lt;!channel" in everything
    assert "&lt;!here&gt; &amp; friends" in everything
    assert "```" not in everything.replace("```", "", 2)  # a cell cannot close the table's code block early


def test_rows_beyond_what_fits_are_counted_as_more_rows() -> None:
    check = late_settle(name="hostile")
    message = render(notice(NoticeKind.OPENED, check, rows_result(check, hostile_rows(), 10_000)), USER_IDS)
    table = next(b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "```" in b["text"]["text"])
    shown = table.split("```")[1].count("\n") - 1  # header and dashes lines, minus the trailing one
    assert f"and {10_000 - shown:,} more rows" in table
    assert "more columns not shown" in table
    assert all(len(line) <= 110 for line in table.split("```")[1].splitlines())


def test_twenty_rows_of_ten_thousand_say_nine_thousand_nine_hundred_eighty_more() -> None:
    rows = [{"order_id": i, "merchant_id": i % 4} for i in range(20)]
    message = render(notice(NoticeKind.OPENED, late_settle(), rows_result(late_settle(), rows, 10_000)), USER_IDS)
    assert "and 9,980 more rows" in json.dumps(message)


def test_owners_are_mentioned_and_unresolved_email_is_text() -> None:
    message = render(CASES["rows_alert"](), USER_IDS)
    owners = next(b["text"]["text"] for b in message["blocks"] if "Owners" in b.get("text", {}).get("text", ""))
    assert owners.splitlines()[0] == "*Owners:* <@U0PAYMENTS> <!subteam^S0DATA> <@U0ANA> nobody@example.com"


def test_query_error_reads_differently_from_data_alert() -> None:
    alert = render(CASES["rows_alert"]())
    error = render(CASES["query_error"]())
    assert alert["blocks"][0]["text"]["text"] == "🔴 Critical · late_settle"
    assert error["blocks"][0]["text"]["text"] == "⚠️ Critical · Query error · late_settle"
    assert "data was not checked" in json.dumps(error)


def test_severity_markers() -> None:
    for severity, mark in ((Severity.CRITICAL, "🔴"), (Severity.WARNING, "🟠"), (Severity.INFO, "🔵")):
        check = late_settle(severity=severity)
        header = render(notice(NoticeKind.OPENED, check, rows_result(check, ORDERS, 3)))["blocks"][0]
        assert header["text"]["text"].startswith(mark)


@pytest.mark.parametrize("severity", list(Severity))
def test_header_names_the_severity_in_words_not_only_by_colour(severity: Severity) -> None:
    check = late_settle(severity=severity, name="auth_not_settled_7d")
    for result in (rows_result(check, ORDERS, 3), error_result(check)):
        header = render(notice(NoticeKind.OPENED, check, result))["blocks"][0]["text"]["text"]
        assert f" {severity.capitalize()} · " in header and header.endswith(" · auth_not_settled_7d")
    assert header == f"⚠️ {severity.capitalize()} · Query error · auth_not_settled_7d"


def test_fallback_text_is_plain_and_escaped() -> None:
    check = late_settle(name="x")
    result = rows_result(check, ORDERS, 3)
    result.message = "<!channel> 3 rows"
    message = render(notice(NoticeKind.OPENED, check, result))
    assert message["text"] == "🔴 Critical · x: &lt;!channel&gt; 3 rows"


def test_escape_covers_slack_control_characters() -> None:
    assert escape("a & <b> <!here>") == "a &amp; &lt;b&gt; &lt;!here&gt;"


def test_a_missing_fixture_fails_unless_regeneration_is_asked_for(tmp_path: Path, monkeypatch) -> None:
    message = render(CASES["rows_alert"](), USER_IDS)
    monkeypatch.delenv("OVERRIDE", raising=False)
    with pytest.raises(pytest.fail.Exception, match="OVERRIDE=true"):
        assert_matches_fixture("new_case", message, tmp_path)
    assert not (tmp_path / "new_case.json").exists()
    monkeypatch.setenv("OVERRIDE", "true")
    assert_matches_fixture("new_case", message, tmp_path)
    monkeypatch.delenv("OVERRIDE")
    assert_matches_fixture("new_case", message, tmp_path)  # stored, and read back as it was


def test_a_fixture_beyond_slack_limits_is_refused_by_slack_sdk(tmp_path: Path) -> None:
    message = {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}
    (tmp_path / "too_long.json").write_text(json.dumps(message))
    with pytest.raises(SlackObjectFormationError, match="150"):
        assert_matches_fixture("too_long", message, tmp_path)


def test_a_closed_query_error_quotes_its_data_in_a_code_block_so_it_cannot_format() -> None:
    check = threshold_check()
    problem = "the metric is not a number: '*boom* ~gone~ _tilt_ <!channel>'"
    closed = [
        dataclasses.replace(notice(kind, check, ok_result(check), 2, problem), status=Status.ERROR, until=NOW)
        for kind in (NoticeKind.RESOLVED, NoticeKind.MISSED)
    ]
    for message in (render_resolved(closed[0]), render(dataclasses.replace(closed[1], ref=None))):
        [was] = [b["text"]["text"] for b in message["blocks"] if "Was:" in b.get("text", {}).get("text", "")]
        assert was.startswith("*Was:*\n```") and was.endswith("```"), "outside a code block, *boom* would be bold"
        assert "*boom* ~gone~ _tilt_ &lt;!channel&gt;" in was
    data_alert = render_resolved(CASES["resolved_reply"]())
    assert "*Was:* 3 rows returned" in json.dumps(data_alert), "the monitor's own words stay prose"
