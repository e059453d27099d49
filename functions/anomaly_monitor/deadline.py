"""Runs a run's checks on threads, a few at a time, and stops waiting for each one at its deadline.

A thread cannot be killed. The warehouse interrupts its own query at the deadline (SQLite's progress
handler, a BigQuery job cancel); this stops waiting for whatever else runs past it (fetching a huge result,
judging it), so a stuck check ends `error` while the run records the others and releases its lock. An
abandoned thread is a daemon: it finishes on its own or dies with the process, and never holds the run, its
lock or the process's exit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_all(tasks: Mapping[str, Callable[[], T]], *, max_workers: int, timeout_s: float) -> dict[str, T | None]:
    """Each task's result by name; None for a task still running `timeout_s` after it started.

    At most `max_workers` tasks run at once (an abandoned one no longer counts); a task that raises
    re-raises here, as a future's result() would."""
    waiting = deque(tasks.items())
    deadlines: dict[str, float] = {}  # the tasks being waited for
    finished: queue.SimpleQueue[tuple[str, T | None, BaseException | None]] = queue.SimpleQueue()
    results: dict[str, T | None] = {}

    def work(name: str, task: Callable[[], T]) -> None:
        try:
            finished.put((name, task(), None))
        except BaseException as exc:
            finished.put((name, None, exc))

    while waiting or deadlines:
        while waiting and len(deadlines) < max_workers:
            name, task = waiting.popleft()
            deadlines[name] = time.monotonic() + timeout_s
            threading.Thread(target=work, args=(name, task), name=f"check-{name}", daemon=True).start()
        try:
            wait = min(max(0.0, min(deadlines.values()) - time.monotonic()), threading.TIMEOUT_MAX)
            name, result, error = finished.get(timeout=wait)
        except queue.Empty:
            now = time.monotonic()
            for late in [name for name, deadline in deadlines.items() if deadline <= now]:
                del deadlines[late]
                results[late] = None
                log.warning(
                    "check %s: stopped waiting after %g s; its thread runs on, unheeded",
                    late,
                    timeout_s,
                    extra={"check": late},
                )
            continue
        if deadlines.pop(name, None) is None:
            continue  # a task that was given up on finished after all: too late
        if error is not None:
            raise error
        results[name] = result
    return results
