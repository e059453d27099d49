"""Without a Slack token: notices are logged, and the CLI prints each alert (and, with --charts, its chart)."""

from __future__ import annotations

import logging

from anomaly_monitor.notifiers import MessageRef, Notice

log = logging.getLogger(__name__)


class ConsoleNotifier:
    def __init__(self, default_channel: str | None = None) -> None:
        self.default_channel = default_channel

    def send(self, notice: Notice) -> MessageRef | None:
        channel = notice.check.channel or self.default_channel or "(no channel)"
        log.info(
            "SLACK_BOT_TOKEN unset: %s notice for %s not posted to %s: %s",
            notice.kind,
            notice.check.name,
            channel,
            notice.result.message,
            extra={"check": notice.check.name},
        )
        return None
