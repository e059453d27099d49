"""A seeded storm: several checks flipping over many runs while Slack misbehaves in every way it can.

The ground truth is the test's own list of each check's failing periods; what reached Slack is read from the
local server's record of every message it holds (and those a person deleted). Every failing period must have
exactly one top-level message, and every period that ended must be resolved, once.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.deployment import Monitor, minutes
from tests.slack_server import SlackServer

pytestmark = pytest.mark.slow
SEED = 20261123
RUNS = 48
CHECKS = ("payments_late", "refunds_stuck", "orders_silent", "payouts_short")
FAULTS = {  # the faults a run may meet, by Slack method
    "chat.postMessage": (
        "ratelimited",
        "server_error",
        "server_error_after",
        "drop",
        "drop_after",
        "late",
        "fatal_error",
    ),
    "chat.update": ("server_error", "drop", "late", "ratelimited"),
    "conversations.history": ("server_error", "drop", "ratelimited"),
    "conversations.replies": ("server_error", "drop"),
}
CLIENT_TIMEOUT_S = 0.3
LATE_S = 0.5


def failing_periods(timeline: list[list[bool]]) -> list[tuple[str, int, int | None]]:
    """(check, first failing run, first ok run after it or None) for every unbroken failing stretch."""
    periods = []
    for c, name in enumerate(CHECKS):
        start = None
        for run, failing in enumerate(row[c] for row in timeline):
            if failing and start is None:
                start = run
            elif not failing and start is not None:
                periods.append((name, start, run))
                start = None
        if start is not None:
            periods.append((name, start, None))
    return periods


def test_storm(tmp_path: Path, slack: SlackServer) -> None:
    rng = random.Random(SEED)
    monitor = Monitor(tmp_path, slack)
    for name in CHECKS:
        monitor.sql(f"CREATE TABLE {name} (failing INTEGER)")
        monitor.sql(f"INSERT INTO {name} VALUES (0)")
    monitor.register(
        *({"name": n, "sql": f"SELECT 1 AS bad FROM {n} WHERE failing = 1", "renotify_hours": "1"} for n in CHECKS)
    )
    injected: Counter[str] = Counter()
    timeline: list[list[bool]] = []
    run_ids: list[str] = []
    failing = [False] * len(CHECKS)
    calm = 3  # runs at the end with Slack well and nothing changing: whatever is owed goes out
    for run in range(RUNS + calm):
        slack.state.faults.clear()
        storm = run < RUNS
        if storm:
            failing = [f if rng.random() > 0.3 else not f for f in failing]
            weather = rng.random()
            slack.down = weather < 0.15
            if slack.down:
                injected["outage (connections refused)"] += 1
            elif weather < 0.6:
                for _ in range(rng.randint(1, 4)):
                    method = rng.choice(list(FAULTS))
                    kind = rng.choice(FAULTS[method])
                    slack.fail(method, kind, retry_after=0, delay_s=LATE_S)
                    injected[f"{method} {kind}"] += 1
            if not slack.down and slack.top_level() and rng.random() < 0.08:
                victim = rng.choice(slack.top_level())
                slack.delete(victim["channel"], victim["ts"])
                injected["message deleted"] += 1
        else:
            slack.down = False
        for name, bad in zip(CHECKS, failing):
            monitor.sql(f"UPDATE {name} SET failing = ?", (int(bad),))
        timeline.append(list(failing))
        report = monitor.run(minutes(10 * run), notifier=monitor.notifier(timeout=CLIENT_TIMEOUT_S))
        run_ids.append(report.run_id)
        assert [c["status"] for c in report.to_json()["checks"]] == ["alert" if f else "ok" for f in failing]

    every = [*slack.state.messages.values(), *slack.state.deleted]
    notices = [SlackServer.notice(m) for m in every]
    by_id = Counter(n["notice_id"] for n in notices)
    duplicates = sum(count - 1 for count in by_id.values())
    tops: dict[tuple[str, str], list[str]] = defaultdict(list)
    closings: dict[tuple[str, str], list[str]] = defaultdict(list)
    for n in notices:
        key = (n["check"], n["incident_id"])
        if n["kind"] in ("opened", "missed"):
            tops[key].append(n["kind"])
        if n["kind"] in ("resolved", "missed"):
            closings[key].append(n["kind"])

    periods = failing_periods(timeline)
    expected = {(name, run_ids[start]) for name, start, _ in periods}
    ended = {(name, run_ids[start]) for name, start, end in periods if end is not None}
    lost = sorted(expected - set(tops))
    figures = {
        "runs": len(timeline),
        "failing periods": len(periods),
        "messages": len(every),
        "top-level messages": sum(1 for m in every if not m.get("thread_ts")),
        "duplicates": duplicates,
        "lost": len(lost),
        "faults injected": sum(injected.values()),
    }
    print(f"\nstorm (seed {SEED}): {figures}\nfaults: {dict(sorted(injected.items()))}")
    assert duplicates == 0
    assert lost == []
    assert set(tops) == expected, "no top-level message for something that was not a failing period"
    assert all(len(kinds) == 1 for kinds in tops.values()), "exactly one top-level message per failing period"
    assert {key for key, kinds in closings.items() if kinds} == ended, "every period that ended is resolved"
    assert all(len(kinds) == 1 for kinds in closings.values()), "and resolved once"
    still_open = expected - ended
    for key in still_open:
        assert not closings.get(key)
    assert len(periods) >= 10 and sum(injected.values()) >= 40, "the storm is a storm"
