"""Notifiers deliver incident notices: to Slack when a token is set, else to the terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from anomaly_monitor.models import CheckResult
from anomaly_monitor.notices import Notice, Sent

ChartRenderer = Callable[[CheckResult], bytes | None]  # a PNG of a result's series, None when it has none


class Notifier(Protocol):
    def channel_for(self, notice: Notice) -> str:
        """Where the notice goes: the incident's channel for a reply, else the check's or the default one."""
        ...

    def send(self, notice: Notice) -> Sent:
        """Delivers one notice.

        Raises DeliveryError when it was certainly not delivered (retried on a later run), DeliveryUnknown when
        it may have been (looked for by `find` on the next run, never sent again blindly)."""
        ...

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        """(ts, thread ts or None) of the message carrying this notice id in the thread or the channel, or None.

        Raises LookupUnavailable when it cannot be searched at all, DeliveryError when Slack cannot be reached."""
        ...
