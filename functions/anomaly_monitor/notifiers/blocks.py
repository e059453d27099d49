"""Slack Block Kit for an alert: a pure function of the alert body, built with slack_sdk's block models and kept
within the limits they carry."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from anomaly_monitor.alerts import RESOLVED_MARKER, Actions, Alert, Lead, Measure, QueryFailure, Rows, actions_for
from anomaly_monitor.display import clip, count, moment, text_table
from anomaly_monitor.incidents import Marks
from anomaly_monitor.models import Action, Check, IncidentEvent, Status
from anomaly_monitor.notices import NoticeKind

# Slack's documented limits that slack_sdk's models do not carry, and the margins we keep under them.
MAX_BLOCKS = 50
FIELD_CHARS = 2000  # each text of a section's fields
FALLBACK_CHARS = 3000  # `text` may hold 40,000, but it is only a notification preview
TABLE_CHARS = SectionBlock.text_max_length - 200  # the ``` fence, the "more rows" note and escapes fit beside it
LINE_CHARS = 110  # wider lines wrap in Slack's code blocks and stop reading as a table
CELL_WIDTHS = (40, 24, 16, 10)
REASON_CHARS = 500
WAS_CHARS = 1000
ACTION_MARKERS = {Action.ACKNOWLEDGE: "👀", Action.SNOOZE: "💤", Action.MUTE: "🔕", Action.EXPECTED: RESOLVED_MARKER}
CLOSED = (NoticeKind.RESOLVED, NoticeKind.EXPECTED)  # the notices after which the incident offers no buttons

# The buttons (SPEC "Slack actions"): each click carries its check in the block id, its action in the action id,
# and, for a snooze, the choice and the check's time zone in the option's value; slack_actions checks all of it
# against the history before it records anything.
ACTIONS_BLOCK_PREFIX = "incident:"
STATUS_BLOCK_ID = "incident_status"  # the line that says who did what, rewritten by each click
BLOCK_ID_CHARS = 255
SNOOZE_LABELS = {"1h": "1 hour", "4h": "4 hours", "24h": "24 hours", "tomorrow": "Until 09:00 tomorrow"}

Message = dict[str, Any]


# ---------------------------------------------------------------- escaping


def escape(text: object) -> str:
    """Slack's three control characters: data can then neither mention anyone nor make a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """A ``` block whose content cannot close it early (backticks become a look-alike)."""
    return "```" + escape(text.replace("`", "ˋ")) + "```"


def link(url: str, label: str) -> str:
    """A mrkdwn link; characters that would end it early are percent-encoded."""
    if not re.match(r"https?://", url):
        return escape(url)
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe}|{label}>"


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


# ---------------------------------------------------------------- blocks


def section(text: str) -> Block:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SectionBlock.text_max_length)))


def header(text: str) -> Block:
    return HeaderBlock(text=PlainTextObject(text=clip(text, HeaderBlock.text_max_length), emoji=True))


def context(parts: Sequence[str]) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(" · ".join(parts), SectionBlock.text_max_length))])


def lead(it: Lead) -> Block:
    marker = f"{it.marker} " if it.marker else ""
    if it.by is not None:
        return section(f"{marker}*{escape(it.headline)}* by {mention(it.by)}: {escape(it.detail)}")
    return section(f"{marker}*{escape(it.headline)}* {escape(it.detail)}")


def members_blocks(alert: Alert) -> list[Block]:
    """The checks a grouped incident covers."""
    if not alert.members:
        return []
    return [section("*Checks:* " + escape(clip(", ".join(alert.members), 2000)))]


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


def rows_block(evidence: Rows) -> Block:
    table, shown, hidden = fit_table(evidence.rows)
    text = code(table)
    notes = []
    if evidence.total > shown:
        notes.append(f"and {count(evidence.total - shown, 'more row')}")
    if hidden:
        notes.append(f"{len(hidden)} more columns not shown: {clip(', '.join(hidden), 300)}")
    if notes:
        text += "\n_" + escape("; ".join(notes)) + "_"
    return section(text)


def measure_block(evidence: Measure) -> Block:
    fields = [
        MarkdownTextObject(text=clip(f"*Value*\n{escape(evidence.value)}", FIELD_CHARS)),
        MarkdownTextObject(text=clip(f"*Expected*\n{escape(evidence.expected)}", FIELD_CHARS)),
    ]
    return SectionBlock(fields=fields)


def finding_blocks(alert: Alert) -> list[Block]:
    """The reason, then the evidence: value and range, or the first rows; a query error in a code block."""
    evidence = alert.evidence
    if isinstance(evidence, QueryFailure):
        return [section(f"{escape(alert.reason)}:\n{code(evidence.error)}")]
    blocks = [section("*" + escape(clip(alert.reason, REASON_CHARS)) + "*")]
    if isinstance(evidence, Measure):
        blocks.append(measure_block(evidence))
    if isinstance(evidence, Rows) and evidence.rows:
        blocks.append(rows_block(evidence))
    return blocks


def was(alert: Alert) -> Block:
    """What a closed incident was. A query error quotes the data, so it stays in a code block, as it was opened."""
    if alert.status is Status.ERROR:
        return section("*Was:*\n" + code(clip(alert.reason, WAS_CHARS)))
    return section("*Was:* " + escape(clip(alert.reason, WAS_CHARS)))


def about_blocks(alert: Alert, user_ids: Mapping[str, str]) -> list[Block]:
    lines = []
    if alert.owners:
        lines.append("*Owners:* " + owners_text(alert.owners, user_ids))
    lines += [f"*{escape(item.title)}:* " + link(item.url, item.text) for item in alert.links]
    return [section("\n".join(lines))] if lines else []


def actions_blocks(offered: Actions | None) -> list[Block]:
    """Acknowledge, Snooze (a menu), Mute until resolved and, on threshold and anomaly checks, Expected."""
    if offered is None:
        return []
    block_id = ACTIONS_BLOCK_PREFIX + offered.check_name
    if len(block_id) > BLOCK_ID_CHARS:  # only a grouped cause with a very long dataset name: no buttons, no error
        return []
    labels = {**SNOOZE_LABELS, "tomorrow": f"{SNOOZE_LABELS['tomorrow']} ({offered.timezone})"}
    options = [Option(value=f"{choice}|{offered.timezone}", text=label) for choice, label in labels.items()]
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
    if offered.expected:
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
    return [ActionsBlock(block_id=block_id, elements=elements)]


def actions_block(check: Check) -> list[dict[str, Any]]:
    """The buttons an incident of this check offers, as Slack holds them in its message."""
    return [block.to_dict() for block in actions_blocks(actions_for(check))]


def mention(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id and re.fullmatch(r"[UW][A-Z0-9]{2,}", user_id) else "someone"


def slack_time(at: dt.datetime) -> str:
    """A time each reader sees in their own time zone, with UTC as the fallback text."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{moment(at)}>"


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


def clicked_message(message_blocks: Sequence[dict[str, Any]], marks: Marks) -> list[dict[str, Any]]:
    """The incident message after a click: its blocks as Slack holds them, with the line of who did what before
    the buttons (replacing the last one); once it is marked expected, the buttons go."""
    kept = [b for b in message_blocks if b.get("block_id") != STATUS_BLOCK_ID]
    buttons = [n for n, b in enumerate(kept) if str(b.get("block_id", "")).startswith(ACTIONS_BLOCK_PREFIX)]
    at = buttons[0] if buttons else len(kept)
    line = status_line(marks)
    status = [{**context([line]).to_dict(), "block_id": STATUS_BLOCK_ID}] if line else []
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


def fallback(text: str) -> str:
    return clip(escape(" ".join(text.split())), FALLBACK_CHARS)


def message(text: str, blocks: list[Block]) -> Message:
    return {"text": fallback(text), "blocks": [block.to_dict() for block in blocks[:MAX_BLOCKS]]}


# ---------------------------------------------------------------- the messages


def render(alert: Alert, user_ids: Mapping[str, str] | None = None) -> Message:
    """The message an alert posts: a new top-level message when OPENED or MISSED, else a reply in the incident's
    thread.

    `user_ids` maps owner e-mails Slack resolved to their user ids; other e-mails are shown as text."""
    return message(alert.summary, blocks(alert, user_ids or {}))


def blocks(alert: Alert, user_ids: Mapping[str, str]) -> list[Block]:
    """The parts of the alert its kind calls for, in reading order."""
    if alert.kind is NoticeKind.MISSED and alert.lead is not None:
        return [
            header(alert.header.text),
            *description_blocks(alert),
            lead(alert.lead),
            was(alert),
            *members_blocks(alert),
            *about_blocks(alert, user_ids),
        ]
    if alert.kind is NoticeKind.OPENED or alert.lead is None:
        return [
            header(alert.header.text),
            *description_blocks(alert),
            *finding_blocks(alert),
            *members_blocks(alert),
            *about_blocks(alert, user_ids),
            context(alert.context),
            *actions_blocks(alert.actions),
        ]
    if alert.kind in CLOSED:
        return [lead(alert.lead)]
    replied = [lead(alert.lead), *finding_blocks(alert)]
    if alert.kind is NoticeKind.REMINDER and alert.owners:
        return [*replied, context(["cc " + owners_text(alert.owners, user_ids)])]
    return [*replied, context(alert.context)] if alert.context else replied


def description_blocks(alert: Alert) -> list[Block]:
    return [section(escape(alert.description))] if alert.description else []


def render_resolved(alert: Alert, user_ids: Mapping[str, str] | None = None) -> Message:
    """The incident's original message, rewritten (chat.update) so the channel shows it is over."""
    parts = [
        header(alert.header.text),
        *description_blocks(alert),
        was(alert),
        *([section(f"*Marked expected* by {mention(alert.lead.by)}")] if alert.lead and alert.lead.by else []),
        *about_blocks(alert, user_ids or {}),
        context(alert.context),
    ]
    return message(f"{alert.header.text} (was: {alert.reason})", parts)


def render_moved(alert: Alert, user_ids: Mapping[str, str] | None = None) -> Message:
    """A notice whose incident message was deleted: a new top-level message that says so, then the notice."""
    began = f" ({moment(alert.since)})" if alert.since else ""
    note = context([f"The message this incident began with{began} is gone; it continues here."])
    buttons = [] if alert.kind in CLOSED else actions_blocks(alert.actions)  # the incident's message from now on
    body = blocks(alert, user_ids or {})[: MAX_BLOCKS - 2 - len(buttons)]
    return message(alert.summary, [header(alert.header.text), note, *body, *buttons])


def with_repeat_warning(body: Message) -> Message:
    """A message that may repeat an earlier one whose delivery could not be confirmed, saying so."""
    note = context(
        [
            "This may repeat an earlier message: its delivery could not be confirmed, and the app cannot "
            "read this channel's history to check (scopes channels:history, groups:history)."
        ]
    )
    return {"text": body["text"], "blocks": [*body["blocks"][: MAX_BLOCKS - 1], note.to_dict()]}
