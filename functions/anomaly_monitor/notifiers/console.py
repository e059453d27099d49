"""Without a Slack token: notices are logged, charts saved under charts/, and the CLI prints each alert."""

from __future__ import annotations

import logging
from pathlib import Path

from anomaly_monitor.errors import LookupUnavailable
from anomaly_monitor.notices import Notice, NoticeKind, Sent
from anomaly_monitor.notifiers import ChartRenderer

log = logging.getLogger(__name__)


class ConsoleNotifier:
    def __init__(
        self, default_channel: str | None = None, chart: ChartRenderer | None = None, chart_dir: Path = Path("charts")
    ) -> None:
        self.default_channel = default_channel
        self.chart = chart
        self.chart_dir = chart_dir

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
        if notice.kind is NoticeKind.OPENED:
            self._save_chart(notice)
        return Sent(None, None)

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        raise LookupUnavailable("SLACK_BOT_TOKEN is unset, so Slack cannot be searched")

    def _save_chart(self, notice: Notice) -> None:
        """The chart Slack would show, as a file; like there, a chart that fails only costs a warning."""
        if self.chart is None:
            return
        try:
            png = self.chart(notice.result)
            if png is None:
                return
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            path = self.chart_dir / f"{notice.check.name}-{notice.at or notice.since:%Y%m%dT%H%M%S}.png"
            path.write_bytes(png)
        except Exception as exc:
            log.warning("check %s: chart not saved (%s: %s)", notice.check.name, type(exc).__name__, exc)
            return
        log.info("check %s: chart saved to %s", notice.check.name, path)
