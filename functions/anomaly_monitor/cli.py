"""The command line: a thin door onto the same core as the HTTP function."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from anomaly_monitor import logs
from anomaly_monitor.errors import ConfigError, MonitorError
from anomaly_monitor.schedule import ScheduleError, check_schedule
from anomaly_monitor.settings import Settings

log = logging.getLogger("anomaly_monitor")
EXIT_RUN_FAILED = 3
# Times a run may pretend it is: the state store and the schedules need a four-digit year with room to add to it.
EARLIEST, LATEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
MAX_DAYS = 36_500  # --days: a century is already far more ticks than a backtest takes


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a bad option means the run could not happen: exit 3
        self.print_usage(sys.stderr)
        self.exit(EXIT_RUN_FAILED, f"{self.prog}: error: {message}\n")


def moment(text: str) -> dt.datetime:
    """An ISO-8601 time from 1970 to 2999 (UTC when it names no offset)."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        in_range = EARLIEST <= value < LATEST
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r} (e.g. 2026-11-23T09:00:00Z)") from None
    if not in_range:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 1970 and 2999: is the year mistyped?")
    return value


def cron(text: str) -> str:
    """A 5-field cron expression that fires (for --every)."""
    try:
        check_schedule(text.strip())
    except ScheduleError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} {exc}") from None
    return text.strip()


def sensitivities(text: str) -> tuple[float, ...]:
    """Comma-separated positive numbers within the registry's own bound, e.g. 2,3,4 (for --sensitivity)."""
    from anomaly_monitor.columns import BY_NAME

    most = BY_NAME["sensitivity"].maximum
    values: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a positive number (e.g. 2,3,4)")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is above {most:g}, the most a check's sensitivity may be (e.g. 2,3,4)"
            )
        if value not in values:
            values.append(value)
    return tuple(values)


def positive_days(text: str) -> int:
    """A whole number of days, 1 to 36,500 (for --days)."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to {MAX_DAYS:,}")
    return days


def chart_path(text: str) -> Path:
    """A PNG file to write, in a folder that exists (for --chart)."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: name the PNG file, e.g. {str(path / 'chart.png')!r}")
    return path


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="anomaly_monitor", description="Run SQL data checks and alert on what they find.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    shared = Parser(add_help=False)
    shared.add_argument("--checks", metavar="SOURCE", help="CSV path or sheets://KEY (default: CHECKS_SOURCE)")
    shared.add_argument("--warehouse", metavar="URL", help="sqlite:///PATH or bigquery://PROJECT/DATASET")
    shared.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    shared.add_argument("--now", type=moment, metavar="ISO-8601", help="judge as if it were this time")
    run = commands.add_parser("run", parents=[shared], help="run the due checks once")
    run.add_argument("--state", metavar="URL", help="sqlite:///PATH or bigquery://PROJECT/DATASET")
    run.add_argument("--check", action="append", default=[], metavar="NAME", help="only this check (repeatable)")
    run.add_argument("--tag", action="append", default=[], metavar="TAG", help="only checks with this tag (repeatable)")
    run.add_argument("--force", action="store_true", help="ignore schedules")
    run.add_argument("--dry-run", action="store_true", help="evaluate, but post and record nothing")
    run.add_argument(
        "--charts",
        metavar="DIR",
        type=Path,
        help="write a PNG chart of each anomaly alert printed here (not with --json)",
    )
    commands.add_parser("validate", parents=[shared], help="check the registry without running queries on the data")
    backtest = commands.add_parser(
        "backtest", parents=[shared], help="replay one check over past ticks: what it would have said"
    )
    backtest.add_argument("--check", action="append", required=True, metavar="NAME", help="the check to replay")
    backtest.add_argument("--state", metavar="URL", help="read only: seeds single-value anomaly checks")
    backtest.add_argument(
        "--from", dest="start", type=moment, metavar="ISO", help="span start (default: --to - 30 days)"
    )
    backtest.add_argument("--to", dest="end", type=moment, metavar="ISO", help="span end (default: now)")
    backtest.add_argument("--days", type=positive_days, metavar="N", help="the span in days (with --from or --to)")
    backtest.add_argument("--every", type=cron, metavar="CRON", help="the ticks (default: the check's schedule)")
    backtest.add_argument(
        "--sensitivity", type=sensitivities, default=(), metavar="S[,S...]", help="anomaly: replay once per value"
    )
    backtest.add_argument("--chart", type=chart_path, metavar="PATH", help="write a PNG of the values and alerts")
    sheet = commands.add_parser("sheet", help="set up the Google Sheet that holds the checks")
    actions = sheet.add_subparsers(dest="sheet_command", required=True, parser_class=Parser)
    init = actions.add_parser(
        "init", help="create or upgrade the worksheets in place, idempotently (with a CSV: print what it would do)"
    )
    init.add_argument("--checks", metavar="SOURCE", help="sheets://KEY, or a CSV path to review the layout offline")
    return top


def settings_for(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides = {
        "checks_source": args.checks,
        "warehouse_url": getattr(args, "warehouse", None),
        "state_url": getattr(args, "state", None),
    }
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v})


def do_run(args: argparse.Namespace, settings: Settings) -> int:
    from anomaly_monitor.models import Status
    from anomaly_monitor.report import render_report
    from anomaly_monitor.runner import RunOptions
    from anomaly_monitor.service import execute

    options = RunOptions(tuple(args.check), tuple(args.tag), args.force, args.dry_run, args.now)
    report = execute(settings, options)
    if args.json:
        sys.stdout.writelines(report.json_text())  # one check at a time
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_report(report))
        if args.charts:
            from anomaly_monitor.charts import save_charts

            saved = save_charts([r for r in report.results if r.status is Status.ALERT], args.charts)
            sys.stdout.write(f"{len(saved)} chart{'' if len(saved) == 1 else 's'} written to {args.charts}\n")
    return report.exit_code()


def do_validate(args: argparse.Namespace, settings: Settings) -> int:
    from anomaly_monitor.service import validate

    results = validate(settings, args.now or dt.datetime.now(dt.UTC))
    if args.json:
        json.dump({"checks": [v.to_json() for v in results]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if not results:
            print(f"no checks in {settings.checks_source}")
        for v in results:
            scanned = f" ({v.bytes:,} bytes)" if v.bytes is not None else ""
            print(f"{'ok     ' if v.valid else 'INVALID'} {v.name}: {v.message}{scanned}")
    return 0 if all(v.valid for v in results) else 1


def do_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from anomaly_monitor.backtest import BacktestOptions, resolve_span
    from anomaly_monitor.backtest_report import render_backtest, render_backtest_chart
    from anomaly_monitor.service import backtest

    if len(args.check) > 1:
        raise ConfigError(f"a backtest replays one check: give --check once, not {len(args.check)} times")
    start, end = resolve_span(args.start, args.end, args.days, args.now or dt.datetime.now(dt.UTC))
    result = backtest(settings, BacktestOptions(args.check[0], start, end, args.every, args.sensitivity))
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_backtest(result))
    if args.chart and result.runs:
        try:
            args.chart.write_bytes(render_backtest_chart(result))
        except OSError as exc:
            raise ConfigError(f"--chart {args.chart}: the PNG could not be written ({exc.strerror})") from None
        log.info("chart written to %s", args.chart)
    return result.exit_code()


def do_sheet_init(args: argparse.Namespace, settings: Settings) -> int:
    location = settings.checks_source
    if not location.startswith("sheets://"):
        from anomaly_monitor.sources.csv_source import CsvSource
        from anomaly_monitor.sources.sheet_layout import describe

        header = CsvSource(location).header()
        compared = f"compared with {location}" if header is not None else f"{location} does not exist: a new one"
        sys.stdout.write(f"A spreadsheet set up by `sheet init` ({compared}):\n\n")
        sys.stdout.write(describe(header))
        return 0
    from anomaly_monitor.sources.sheet_setup import set_up
    from anomaly_monitor.sources.sheets import SheetsSource

    source = SheetsSource.from_url(location, settings)
    setup = set_up(source, settings)
    link = f"https://docs.google.com/spreadsheets/d/{source.key}/edit"
    if not setup.changes:
        print(f"{link} is already set up: nothing changed ({setup.reads} reads, no write)")
        return 0
    for change in setup.changes:
        print(f"  {change}")
    print(f"{link} is set up: {len(setup.changes)} changes in one batchUpdate ({setup.reads} reads)")
    return 0


COMMANDS = {"run": do_run, "validate": do_validate, "backtest": do_backtest, "sheet": do_sheet_init}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure("text")
    try:
        settings = settings_for(args)
        logs.configure(settings.log_format)
        return COMMANDS[args.command](args, settings)
    except MonitorError as exc:
        # one line the monitoring matches (Terraform's log-based alert): the run could not happen
        log.error("the run could not happen: %s", exc, extra={"event": "run_failed"})
        return EXIT_RUN_FAILED
