"""Slack pacing: alerts to one channel go out at Slack's pace, all of them once; channels do not wait on each other.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_pacing.py [--alerts 100] [--pace 0.03]

A run with --alerts failing checks posts to the local Slack server (tests/slack_server.py), which answers 429
to a channel written to faster than its rate, as Slack does at about one message a second per channel. Slack's
second is scaled down to --pace so the benchmark takes seconds. Targets: every alert delivered, none twice; one
channel's alerts take about alerts x pace; the same alerts over four channels about a quarter of that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deployment import LATE_SQL, Monitor, minutes
from tests.slack_server import SlackServer, serving

CHANNELS = ("#alerts", "#payments", "#orders", "#risk")


def paced_run(alerts: int, channels: int, pace: float) -> str:
    """`alerts` failing checks, check i alerting to the (i % channels)-th of CHANNELS."""
    with tempfile.TemporaryDirectory() as tmp, serving() as slack:
        for i, channel in enumerate(CHANNELS[1:channels]):
            slack.add_channel(channel.removeprefix("#"), f"C0BENCH{i}")
        monitor = Monitor(Path(tmp), slack)
        rows = [{"name": f"check_{i:03d}", "sql": LATE_SQL, "channel": CHANNELS[i % channels]} for i in range(alerts)]
        monitor.register(*rows)
        monitor.late_rows("order 1")
        slack.state.rate_interval_s = pace * 2 / 3  # Slack's rate, scaled down: a faster write gets a 429
        slack.state.rate_retry_after = pace * 2 / 3
        started = time.perf_counter()
        report = monitor.run(minutes(0), notifier=monitor.notifier(pace_s=pace))
        seconds = time.perf_counter() - started
        posted = [SlackServer.notice(m)["check"] for m in slack.top_level()]
        most = -(-alerts // channels)  # alerts to the busiest channel
        return (
            f"{len(set(posted))}/{alerts} delivered, {len(posted) - len(set(posted))} twice (target all, none), "
            f"{slack.state.rate_limited} answered 429, failures {report.delivery_failures}; {seconds:.2f} s, "
            f"{seconds / (most * pace):.2f} x {most} alerts x pace (target about 1)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--pace", type=float, default=0.1, help="seconds between two writes to one channel")
    args = parser.parse_args()
    print(f"pacing, {args.alerts} alerts to one channel: {paced_run(args.alerts, 1, args.pace)}")
    print(f"pacing, {args.alerts} alerts over {len(CHANNELS)} channels (they do not wait on each other): "
          f"{paced_run(args.alerts, len(CHANNELS), args.pace)}")  # fmt: skip


if __name__ == "__main__":
    main()
