"""Notifiers deliver incident notices: to Slack when a token is set, else to the terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from anomaly_monitor.models import CheckResult
from anomaly_monitor.notices import MessageRef, Notice

ChartRenderer = Callable[[CheckResult], bytes | None]  # a PNG of a result's series, None when it has none


class Notifier(Protocol):
    def send(self, notice: Notice) -> MessageRef | None:
        """Delivers one notice; returns the incident's message (None where there is none, e.g. the terminal).

        Raises DeliveryError when it could not be delivered: the run records that and retries next time."""
        ...
