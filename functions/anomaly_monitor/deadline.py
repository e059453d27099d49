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
    re-raises here, as a future's result() would. Each worker thread runs task after task: starting a thread
    per task would cost more than a cheap check."""
    waiting = deque(tasks.items())
    lock = threading.Lock()
    deadlines: dict[str, float] = {}  # the tasks being waited for (under lock)
    abandoned: set[str] = set()  # tasks given up on: their threads stop after them (under lock)
    finished: queue.SimpleQueue[tuple[str, T | None, BaseException | None]] = queue.SimpleQueue()
    results: dict[str, T | None] = {}

    def work() -> None:
        while True:
            with lock:
                if not waiting:
                    return
                name, task = waiting.popleft()
                deadlines[name] = time.monotonic() + timeout_s
            try:
                finished.put((name, task(), None))
            except BaseException as exc:
                finished.put((name, None, exc))
            with lock:
                if name in abandoned:
                    return  # a new worker took this one's place when it was given up on

    def start_worker() -> None:
        threading.Thread(target=work, name="check-worker", daemon=True).start()

    for _ in range(min(max_workers, len(waiting))):
        start_worker()
    while len(results) < len(tasks):
        with lock:
            first = min(deadlines.values(), default=time.monotonic() + timeout_s)
        try:
            name, result, error = finished.get(timeout=min(max(0.0, first - time.monotonic()), threading.TIMEOUT_MAX))
        except queue.Empty:
            with lock:
                now = time.monotonic()
                late = [name for name, deadline in deadlines.items() if deadline <= now]
                for name in late:
                    del deadlines[name]
                    abandoned.add(name)
                replacements = min(len(late), len(waiting))
            for name in late:
                results[name] = None
                log.warning(
                    "check %s: stopped waiting after %g s; its thread runs on, unheeded",
                    name,
                    timeout_s,
                    extra={"check": name},
                )
            for _ in range(replacements):
                start_worker()
            continue
        with lock:
            if deadlines.pop(name, None) is None:
                continue  # a task that was given up on finished after all: too late
        if error is not None:
            raise error
        results[name] = result
    return results
