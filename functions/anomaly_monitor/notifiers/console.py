"""Without a Slack token: notices are logged, and the CLI prints each alert (and, with --charts, its chart)."""

from __future__ import annotations

import logging

from anomaly_monitor.errors import LookupUnavailable
from anomaly_monitor.notices import Notice, Sent

log = logging.getLogger(__name__)


class ConsoleNotifier:
    def __init__(self, default_channel: str | None = None) -> None:
        self.default_channel = default_channel

    def channel_for(self, notice: Notice) -> str:
        return notice.check.channel or self.default_channel or "(no channel)"

    def send(self, notice: Notice) -> Sent:
        channel = self.channel_for(notice)
        log.info(
            "SLACK_BOT_TOKEN unset: %s notice for %s not posted to %s: %s",
            notice.kind,
            notice.check.name,
            channel,
            notice.result.message,
            extra={"check": notice.check.name},
        )
        return Sent(None, None)

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        raise LookupUnavailable("SLACK_BOT_TOKEN is unset, so Slack cannot be searched")
