"""Clients of outside services, built on first use and kept for the life of the instance.

Never at import (every cold start pays for it) and never per request: a warm instance reuses its clients,
credentials and connections across invocations. What belongs to one run (the Slack notifier's e-mail
cache) lives in that run's objects, not here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()  # checks run in a thread pool: the first ones must not build a client each


def cached(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """One value per key for the life of the instance; a build that raises is tried again next time."""
    with _lock:
        if key not in _clients:
            _clients[key] = build()
        return _clients[key]
