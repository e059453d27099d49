"""Slack Block Kit messages for incident notices: a pure function of the notice, within Slack's limits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, Option, StaticSelectElement

from anomaly_monitor.incidents import Marks
from anomaly_monitor.judge import expected_range, fmt
from anomaly_monitor.models import Action, Check, CheckResult, CheckType, IncidentEvent, Severity, Status
from anomaly_monitor.notifiers import REGISTRY, Notice, NoticeKind
from anomaly_monitor.report import text_table

# Slack's documented limits, and the margins we keep under them.
MAX_BLOCKS = 50
SECTION_CHARS = 3000
HEADER_CHARS = 150
FALLBACK_CHARS = 3000  # `text` may hold 40,000, but it is only a notification preview
TABLE_CHARS = 2800  # the ``` fence, the "more rows" note and escapes must fit beside the table in one section
LINE_CHARS = 110  # wider lines wrap in Slack's code blocks and stop reading as a table
CELL_WIDTHS = (40, 24, 16, 10)

MARKERS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
ERROR_MARKER = "⚠️"
RESOLVED_MARKER = "✅"
ACTION_MARKERS = {Action.ACKNOWLEDGE: "👀", Action.SNOOZE: "💤", Action.MUTE: "🔕", Action.EXPECTED: RESOLVED_MARKER}

# The buttons (SPEC "Slack actions"): each click carries its check in the block id, its action in the action id,
# and, for a snooze, the choice and the check's time zone in the option's value; slack_actions checks all of it
# against the history before it records anything.
ACTIONS_BLOCK_PREFIX = "incident:"
STATUS_BLOCK_ID = "incident_status"  # the line that says who did what, rewritten by each click
BLOCK_ID_CHARS = 255
SNOOZE_LABELS = {"1h": "1 hour", "4h": "4 hours", "24h": "24 hours", "tomorrow": "Until 09:00 tomorrow"}

Block = dict[str, Any]
Message = dict[str, Any]


# ---------------------------------------------------------------- escaping


def escape(text: object) -> str:
    """Slack's three control characters: data can then neither mention anyone nor make a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """A ``` block whose content cannot close it early (backticks become a look-alike)."""
    return "```" + escape(text.replace("`", "ˋ")) + "```"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def link(url: str, label: str) -> str:
    """A mrkdwn link; characters that would end it early are percent-encoded."""
    if not re.match(r"https?://", url):
        return escape(url)
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe}|{label}>"


# ---------------------------------------------------------------- pieces


def when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(start: dt.datetime, end: dt.datetime) -> str:
    minutes = max(0, round((end - start).total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def runs(n: int) -> str:
    return count(n, "run")


def owner_mention(owner: str, user_ids: Mapping[str, str]) -> str:
    """U…/W… users and S… user groups are mentioned; an e-mail only once Slack has resolved it."""
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", owner):
        return f"<@{owner}>"
    if re.fullmatch(r"S[A-Z0-9]{2,}", owner):
        return f"<!subteam^{owner}>"
    if owner in user_ids:
        return f"<@{user_ids[owner]}>"
    return escape(owner)


def owners_text(owners: Sequence[str], user_ids: Mapping[str, str]) -> str:
    return " ".join(owner_mention(o, user_ids) for o in owners)


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_CHARS)}}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_CHARS), "emoji": True}}


def context(parts: Sequence[str]) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(" · ".join(parts), SECTION_CHARS)}]}


def marker(notice: Notice) -> str:
    return ERROR_MARKER if notice.result.status is Status.ERROR else MARKERS[notice.check.severity]


def title(notice: Notice) -> str:
    if notice.check.name == REGISTRY:
        return f"{ERROR_MARKER} The check registry cannot be read"
    if notice.members:  # a grouped incident: one shared cause
        return f"{ERROR_MARKER} {count(len(notice.members), 'check')} could not run"
    if notice.result.status is Status.ERROR:
        return f"{ERROR_MARKER} Check failed to run: {notice.check.name}"
    return f"{marker(notice)} {notice.check.name}"


def members_blocks(notice: Notice) -> list[Block]:
    """The checks a grouped incident covers."""
    if not notice.members:
        return []
    return [section("*Checks:* " + escape(clip(", ".join(notice.members), 2000)))]


# ---------------------------------------------------------------- what the data says


def line_width(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], width: int) -> int:
    return len(text_table(rows, columns, width).splitlines()[1])  # the dashes line spans the table


def fit_columns(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> tuple[list[str], int]:
    """Narrower cells first; only when the narrowest are still too wide, trailing columns go."""
    for width in CELL_WIDTHS:
        if line_width(rows, columns, width) <= LINE_CHARS:
            return columns, width
    width, shown = CELL_WIDTHS[-1], list(columns)
    while len(shown) > 1 and line_width(rows, shown, width) > LINE_CHARS:
        shown.pop()
    return shown, width


def fit_table(rows: Sequence[Mapping[str, Any]]) -> tuple[str, int, list[str]]:
    """The largest readable table of the first rows: (table, rows shown, columns left out)."""
    columns = list(rows[0].keys())
    shown, width = fit_columns(rows, columns)
    hidden = columns[len(shown) :]
    for n in range(len(rows), 0, -1):
        table = text_table(rows[:n], shown, width)
        if len(escape(table)) <= TABLE_CHARS:
            return table, n, hidden
    return clip(text_table(rows[:1], shown, width), TABLE_CHARS // 5), 1, hidden  # a pathological header


def rows_blocks(result: CheckResult) -> list[Block]:
    if not result.rows:
        return []
    table, shown, hidden = fit_table(result.rows)
    total = max(result.row_count or 0, len(result.rows))
    text = code(table)
    notes = []
    if total > shown:
        notes.append(f"and {count(total - shown, 'more row')}")
    if hidden:
        notes.append(f"{len(hidden)} more columns not shown: {clip(', '.join(hidden), 300)}")
    if notes:
        text += "\n_" + escape("; ".join(notes)) + "_"
    return [section(text)]


def value_blocks(result: CheckResult) -> list[Block]:
    if result.expected is None:
        return []
    fields = [
        {"type": "mrkdwn", "text": f"*Value*\n{escape(fmt(result.value))}"},
        {"type": "mrkdwn", "text": f"*Expected*\n{escape(expected_range(result.expected))}"},
    ]
    return [{"type": "section", "fields": fields}]


def finding_blocks(result: CheckResult) -> list[Block]:
    """The reason, then the evidence: value and range, or the first rows."""
    if result.status is Status.ERROR:
        return [section("The query did not give a result, so the data was not checked:\n" + code(result.message))]
    return [section("*" + escape(clip(result.message, 500)) + "*"), *value_blocks(result), *rows_blocks(result)]


def about_blocks(notice: Notice, user_ids: Mapping[str, str]) -> list[Block]:
    check = notice.check
    lines = []
    if check.owners:
        lines.append("*Owners:* " + owners_text(check.owners, user_ids))
    if check.runbook:
        lines.append("*Runbook:* " + link(check.runbook, "open the runbook"))
    return [section("\n".join(lines))] if lines else []


def run_context(notice: Notice) -> Block:
    at = notice.at or notice.since
    parts = [f"Run {when(at)}", f"failing since {when(notice.since)} ({runs(notice.failing_runs)})"]
    if notice.result.type == "rows" and notice.result.row_count is not None and notice.result.status is Status.ALERT:
        parts.append(count(notice.result.row_count, "row"))
    parts += [f"{notice.check.type} check", f"severity {notice.check.severity}"]
    return context(parts)


def fallback(*parts: str) -> str:
    return clip(escape(" ".join(" ".join(p.split()) for p in parts if p)), FALLBACK_CHARS)


def message(text: str, blocks: list[Block]) -> Message:
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


# ---------------------------------------------------------------- the buttons


def actions_block(check: Check) -> list[Block]:
    """Acknowledge, Snooze (a menu), Mute until resolved and, on threshold and anomaly checks, Expected."""
    block_id = ACTIONS_BLOCK_PREFIX + check.name
    if len(block_id) > BLOCK_ID_CHARS:  # only a grouped cause with a very long dataset name: no buttons, no error
        return []
    labels = {**SNOOZE_LABELS, "tomorrow": f"{SNOOZE_LABELS['tomorrow']} ({check.timezone})"}
    options = [Option(value=f"{choice}|{check.timezone}", text=label) for choice, label in labels.items()]
    elements: list[Any] = [
        ButtonElement(text="Acknowledge", action_id=Action.ACKNOWLEDGE, value=Action.ACKNOWLEDGE, style="primary"),
        StaticSelectElement(placeholder="Snooze…", action_id=Action.SNOOZE, options=options),
        ButtonElement(
            text="Mute until resolved",
            action_id=Action.MUTE,
            value=Action.MUTE,
            confirm=ConfirmObject(
                title="Mute until resolved?",
                text="No reminders or updates about this incident until it resolves.",
                confirm="Mute",
                deny="Cancel",
            ),
        ),
    ]
    if check.type in (CheckType.THRESHOLD, CheckType.ANOMALY):
        elements.append(
            ButtonElement(
                text="Expected",
                action_id=Action.EXPECTED,
                value=Action.EXPECTED,
                confirm=ConfirmObject(
                    title="Is this value normal?",
                    text="The incident resolves, and the check stays quiet until it is ok again; an anomaly check "
                    "leaves this value out of its baseline.",
                    confirm="It is expected",
                    deny="Cancel",
                ),
            )
        )
    return [ActionsBlock(block_id=block_id, elements=elements).to_dict()]


def mention(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id and re.fullmatch(r"[UW][A-Z0-9]{2,}", user_id) else "someone"


def slack_time(moment: dt.datetime) -> str:
    """A time each reader sees in their own time zone, with UTC as the fallback text."""
    unix = int(moment.timestamp())
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{when(moment)}>"


def status_line(marks: Marks) -> str:
    """Who did what to the incident, as its message shows it ("👀 Acknowledged by @ana · …")."""
    parts = []
    if marks.acknowledged:
        people = ", ".join(dict.fromkeys(mention(e.user_id) for e in marks.acknowledged))
        parts.append(f"{ACTION_MARKERS[Action.ACKNOWLEDGE]} Acknowledged by {people}")
    if marks.snooze is not None and marks.snooze.until is not None:
        until = slack_time(marks.snooze.until)
        parts.append(f"{ACTION_MARKERS[Action.SNOOZE]} Snoozed until {until} by {mention(marks.snooze.user_id)}")
    if marks.muted is not None:
        parts.append(f"{ACTION_MARKERS[Action.MUTE]} Muted until resolved by {mention(marks.muted.user_id)}")
    if marks.expected is not None:
        who = mention(marks.expected.user_id)
        parts.append(f"{ACTION_MARKERS[Action.EXPECTED]} Marked expected by {who}: resolves on the next run")
    return " · ".join(parts)


def clicked_message(blocks: Sequence[Block], marks: Marks) -> list[Block]:
    """The incident message after a click: its blocks as Slack holds them, with the line of who did what before
    the buttons (replacing the last one); once it is marked expected, the buttons go."""
    kept = [b for b in blocks if b.get("block_id") != STATUS_BLOCK_ID]
    buttons = [n for n, b in enumerate(kept) if str(b.get("block_id", "")).startswith(ACTIONS_BLOCK_PREFIX)]
    at = buttons[0] if buttons else len(kept)
    line = status_line(marks)
    status = [{**context([line]), "block_id": STATUS_BLOCK_ID}] if line else []
    rest = kept[at + 1 :] if buttons and marks.expected is not None else kept[at:]
    return [*kept[:at], *status, *rest][:MAX_BLOCKS]


def click_reply(event: IncidentEvent) -> str:
    """What a click tells the incident's thread."""
    who = mention(event.user_id)
    marker = ACTION_MARKERS[event.action]
    if event.action is Action.ACKNOWLEDGE:
        return f"{marker} {who} acknowledged this incident: no more reminders about it."
    if event.action is Action.SNOOZE and event.until is not None:
        return (
            f"{marker} {who} snoozed check *{escape(event.check_name)}* until {slack_time(event.until)}: no "
            "reminders and no new incident until then."
        )
    if event.action is Action.MUTE:
        return f"{marker} {who} muted this incident: nothing more about it until it resolves."
    return (
        f"{marker} {who} marked this value expected: the incident resolves on the next run, and the check stays "
        "quiet until it is ok again."
    )


# ---------------------------------------------------------------- the messages


def render(notice: Notice, user_ids: Mapping[str, str] | None = None) -> Message:
    """The message a notice posts: a new top-level message when OPENED, else a reply in the incident's thread.

    `user_ids` maps owner e-mails Slack resolved to their user ids; other e-mails are shown as text."""
    user_ids = user_ids or {}
    renderers = {
        NoticeKind.OPENED: render_opened,
        NoticeKind.REMINDER: render_reminder,
        NoticeKind.CHANGED: render_changed,
        NoticeKind.RESOLVED: render_resolved_reply,
        NoticeKind.MISSED: render_missed,
        NoticeKind.EXPECTED: render_expected_reply,
    }
    return renderers[notice.kind](notice, user_ids)


def render_opened(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    check, result = notice.check, notice.result
    blocks = [header(title(notice))]
    if check.description:
        blocks.append(section(escape(check.description)))
    blocks += finding_blocks(result)
    blocks += members_blocks(notice)
    blocks += about_blocks(notice, user_ids)
    blocks.append(run_context(notice))
    blocks += actions_block(check)
    what = "check failed to run" if result.status is Status.ERROR else str(check.severity)
    return message(fallback(f"{marker(notice)} {check.name} ({what}):", result.message), blocks)


def render_reminder(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    at = notice.at or notice.since
    lead = (
        f"⏰ *Still failing* since {when(notice.since)}: {runs(notice.failing_runs)}, "
        f"{duration(notice.since, at)} so far."
    )
    blocks = [section(lead), *finding_blocks(notice.result)]
    if notice.check.owners:
        blocks.append(context(["cc " + owners_text(notice.check.owners, user_ids)]))
    text = f"{notice.check.name} still failing since {when(notice.since)} ({runs(notice.failing_runs)}):"
    return message(fallback(text, notice.result.message), blocks)


def render_changed(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    if notice.result.status is Status.ERROR:
        lead = f"{ERROR_MARKER} *Now failing to run* (until now it was a data alert)."
        text = f"{notice.check.name} now fails to run:"
    else:
        lead = f"{marker(notice)} *Runs again, and the data still fails the check* (it was a query error)."
        text = f"{notice.check.name} runs again and still alerts:"
    blocks = [section(lead), *finding_blocks(notice.result), run_context(notice)]
    return message(fallback(text, notice.result.message), blocks)


def render_resolved_reply(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    at = notice.at or notice.since
    lead = (
        f"{RESOLVED_MARKER} *Resolved* after {runs(notice.failing_runs)} "
        f"({duration(notice.since, at)}): {escape(clip(notice.result.message, 500))}"
    )
    text = f"{notice.check.name} resolved after {runs(notice.failing_runs)} ({duration(notice.since, at)})"
    return message(fallback(text), [section(lead)])


def render_expected_reply(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    at = notice.at or notice.since
    baseline = (
        " Its value is left out of the check's baseline from now on." if notice.check.type is CheckType.ANOMALY else ""
    )
    lead = (
        f"{RESOLVED_MARKER} *Marked expected* by {mention(notice.by)}: resolved after {runs(notice.failing_runs)} "
        f"({duration(notice.since, at)}). The check stays quiet until it is ok again.{baseline}"
    )
    text = f"{notice.check.name} marked expected: resolved after {runs(notice.failing_runs)}"
    return message(fallback(text), [section(lead)])


def render_resolved(notice: Notice, user_ids: Mapping[str, str] | None = None) -> Message:
    """The incident's original message, rewritten (chat.update) so the channel shows it is over."""
    check = notice.check
    at = notice.at or notice.since
    blocks = [header(f"{RESOLVED_MARKER} Resolved: {check.name}")]
    if check.description:
        blocks.append(section(escape(check.description)))
    blocks.append(section("*Was:* " + escape(clip(notice.problem, 1000))))
    if notice.kind is NoticeKind.EXPECTED:
        blocks.append(section(f"*Marked expected* by {mention(notice.by)}"))
    blocks += about_blocks(notice, user_ids or {})
    parts = [
        f"Failing since {when(notice.since)}",
        f"{'marked expected' if notice.kind is NoticeKind.EXPECTED else 'cleared'} {when(at)}",
        f"after {runs(notice.failing_runs)} ({duration(notice.since, at)})",
    ]
    blocks.append(context(parts))
    return message(fallback(f"{RESOLVED_MARKER} Resolved: {check.name} (was: {notice.problem})"), blocks)


def render_missed(notice: Notice, user_ids: Mapping[str, str]) -> Message:
    """A whole incident that began and ended while its message could not be posted: one message, resolved."""
    check = notice.check
    until = notice.until or notice.at or notice.since
    blocks = [header(f"{RESOLVED_MARKER} Resolved: {check.name}")]
    if check.description:
        blocks.append(section(escape(check.description)))
    lead = (
        f"*Failed from {when(notice.since)} to {when(until)}* ({runs(notice.failing_runs)}, "
        f"{duration(notice.since, until)}) while Slack was unreachable; it is ok again."
    )
    blocks += [section(lead), section("*Was:* " + escape(clip(notice.problem, 1000)))]
    blocks += members_blocks(notice)
    blocks += about_blocks(notice, user_ids)
    text = f"{check.name} failed from {when(notice.since)} to {when(until)} while Slack was unreachable:"
    return message(fallback(f"{RESOLVED_MARKER} {text}", notice.problem), blocks)


def render_moved(notice: Notice, user_ids: Mapping[str, str] | None = None) -> Message:
    """A notice whose incident message was deleted: a new top-level message that says so, then the notice."""
    user_ids = user_ids or {}
    resolved = notice.kind in (NoticeKind.RESOLVED, NoticeKind.EXPECTED)
    name = f"{RESOLVED_MARKER} Resolved: {notice.check.name}" if resolved else title(notice)
    note = context([f"The message this incident began with ({when(notice.since)}) is gone; it continues here."])
    body = render(notice, user_ids)
    buttons = [] if resolved else actions_block(notice.check)  # the incident's message from now on
    return message(body["text"], [header(name), note, *body["blocks"][: MAX_BLOCKS - 2 - len(buttons)], *buttons])


def with_repeat_warning(body: Message) -> Message:
    """A message that may repeat an earlier one whose delivery could not be confirmed, saying so."""
    note = context(
        [
            "This may repeat an earlier message: its delivery could not be confirmed, and the app cannot "
            "read this channel's history to check (scopes channels:history, groups:history)."
        ]
    )
    return message(body["text"], [*body["blocks"], note])
