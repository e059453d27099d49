"""Slack Block Kit for an alert: a pure function of the alert body, built with slack_sdk's block models and kept
within the limits they carry."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from anomaly_monitor.alerts import Alert, Lead, Measure, QueryFailure, Rows
from anomaly_monitor.display import clip, count, text_table
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
    return section(f"{it.marker} *{escape(it.headline)}* {escape(it.detail)}")


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


def about_blocks(alert: Alert, user_ids: Mapping[str, str]) -> list[Block]:
    lines = []
    if alert.owners:
        lines.append("*Owners:* " + owners_text(alert.owners, user_ids))
    lines += [f"*{escape(item.title)}:* " + link(item.url, item.text) for item in alert.links]
    return [section("\n".join(lines))] if lines else []


def actions_blocks(alert: Alert) -> list[Block]:
    if not alert.actions:
        return []
    buttons = [
        ButtonElement(text=clip(a.label, ButtonElement.text_max_length), action_id=a.action_id, value=a.value or None)
        for a in alert.actions
    ]
    return [ActionsBlock(elements=buttons[: ActionsBlock.elements_max_length])]


def fallback(text: str) -> str:
    return clip(escape(" ".join(text.split())), FALLBACK_CHARS)


def message(text: str, blocks: list[Block]) -> Message:
    return {"text": fallback(text), "blocks": [block.to_dict() for block in blocks[:MAX_BLOCKS]]}


# ---------------------------------------------------------------- the messages


def render(alert: Alert, user_ids: Mapping[str, str] | None = None) -> Message:
    """The message an alert posts: a new top-level message when OPENED, else a reply in the incident's thread.

    `user_ids` maps owner e-mails Slack resolved to their user ids; other e-mails are shown as text."""
    user_ids = user_ids or {}
    if alert.kind is NoticeKind.OPENED or alert.lead is None:
        blocks = [header(alert.header.text)]
        if alert.description:
            blocks.append(section(escape(alert.description)))
        blocks += [*finding_blocks(alert), *about_blocks(alert, user_ids), context(alert.context)]
        return message(alert.summary, [*blocks, *actions_blocks(alert)])
    if alert.kind is NoticeKind.RESOLVED:
        return message(alert.summary, [lead(alert.lead)])
    blocks = [lead(alert.lead), *finding_blocks(alert)]
    if alert.kind is NoticeKind.REMINDER and alert.owners:
        blocks.append(context(["cc " + owners_text(alert.owners, user_ids)]))
    elif alert.context:
        blocks.append(context(alert.context))
    return message(alert.summary, blocks)


def render_resolved(alert: Alert, user_ids: Mapping[str, str] | None = None) -> Message:
    """The incident's original message, rewritten (chat.update) so the channel shows it is over."""
    blocks = [header(alert.header.text)]
    if alert.description:
        blocks.append(section(escape(alert.description)))
    blocks.append(section("*Was:* " + escape(clip(alert.reason, WAS_CHARS))))
    blocks += about_blocks(alert, user_ids or {})
    blocks.append(context(alert.context))
    return message(f"{alert.header.text} (was: {alert.reason})", blocks)
