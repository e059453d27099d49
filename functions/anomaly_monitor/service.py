"""Builds a run's backends from settings; what both doors (CLI and HTTP) call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anomaly_monitor.clients.sqlite import same_sqlite_file
from anomaly_monitor.errors import ConfigError, MonitorError, QueryError, UnknownCheckError
from anomaly_monitor.exclusions import parse_exclusions
from anomaly_monitor.models import GB, Check, CheckType, RunReport
from anomaly_monitor.notifiers import Notifier
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.runner import Backends, RunOptions, run
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources import open_source, status_publisher
from anomaly_monitor.state import open_state
from anomaly_monitor.warehouses import Warehouse, open_warehouse

if TYPE_CHECKING:
    from anomaly_monitor.backtest import Backtest, BacktestOptions


def open_notifier(settings: Settings) -> Notifier:
    """Slack when a token is configured (directly or through Secret Manager), else the terminal."""
    if settings.slack_bot_token or settings.slack_bot_token_secret:
        from anomaly_monitor.notifiers.slack import SlackNotifier

        return SlackNotifier.from_settings(settings)
    from anomaly_monitor.notifiers.console import ConsoleNotifier

    return ConsoleNotifier(settings.slack_default_channel)


def build_backends(settings: Settings) -> Backends:
    if same_sqlite_file(settings.state_url, settings.warehouse_url):
        raise ConfigError(
            f"the state store {settings.state_url} is the warehouse file {settings.warehouse_url}: the history would "
            "be written into the data the checks read; point --state (STATE_URL) at another file, e.g. "
            "sqlite:///data/state.db"
        )
    source = open_source(settings.checks_source, settings)
    return Backends(
        source=source,
        publisher=status_publisher(source),
        warehouse=open_warehouse(settings.warehouse_url, settings),
        state=open_state(settings.state_url, settings),
        notifier=open_notifier(settings),
        settings=settings,
    )


def execute(settings: Settings, options: RunOptions) -> RunReport:
    """One run; its instant is `options.now` (--now) or the clock once the run lock is held (see runner.run)."""
    return run(build_backends(settings), options)


@dataclass
class Validation:
    name: str
    valid: bool
    message: str
    bytes: int | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "valid": self.valid, "message": self.message, "bytes": self.bytes}


def validate(settings: Settings, now: dt.datetime) -> list[Validation]:
    """Every registry row checked, and every valid query prepared (BigQuery: a dry-run job) but not run; then
    every exclusion row, reported as a run reports it."""
    source = open_source(settings.checks_source, settings)
    warehouse = open_warehouse(settings.warehouse_url, settings)
    registry = parse_registry(source.read_rows(), settings.worksheets)
    rows: list[tuple[int, Validation]] = [
        (check.row_number, prepare(check, warehouse, settings, now)) for check in registry.checks
    ]
    rows += [(row.row_number, Validation(row.name, False, row.message)) for row in registry.invalid]
    exclusions = parse_exclusions(source.read_exclusions()).invalid_results()
    return [validation for _, validation in sorted(rows, key=lambda pair: pair[0])] + [
        Validation(row.name, False, row.message) for row in exclusions
    ]


def prepare(check: Check, warehouse: Warehouse, settings: Settings, now: dt.datetime) -> Validation:
    """One check's query prepared but not run, against its byte cap."""
    cap_gb = check.byte_cap_gb(settings.max_gb_billed)
    try:
        scanned = warehouse.dry_run(check.sql, check_name=check.name, now=now)
    except QueryError as exc:
        problem = str(exc)
    except MonitorError:  # the warehouse itself is missing or misconfigured: the whole validation fails
        raise
    except Exception as exc:  # as in a run (runner.evaluate): one check's failure stays that check's
        problem = f"could not be prepared ({type(exc).__name__}: {str(exc)[:200]})"
    else:
        if scanned is not None and scanned > cap_gb * GB:
            message = f"would scan {scanned / GB:.2f} GB, above its cap of {cap_gb:g} GB (max_gb_billed)"
            return Validation(check.name, False, message, scanned)
        return Validation(check.name, True, "ok", scanned)
    if not check.enabled:  # e.g. waiting for its table to land: worth a word, not a failed validation
        return Validation(check.name, True, f"disabled; its query would fail: {problem}")
    return Validation(
        check.name, False, f'checks row {check.row_number} (name "{check.name}"): column "sql": {problem}'
    )


def backtest(settings: Settings, options: BacktestOptions) -> Backtest:
    """One check replayed over past ticks (see backtest.py); posts and records nothing."""
    from anomaly_monitor.backtest import Backtest, run_backtest

    source = open_source(settings.checks_source, settings)
    registry = parse_registry(source.read_rows(), settings.worksheets)
    check = next((c for c in registry.checks if c.name == options.check), None)
    if check is None:
        row = next((i for i in registry.invalid if i.name == options.check), None)
        if row is None:
            raise UnknownCheckError(f"no check named {options.check!r} in the registry")
        return Backtest(row.name, None, options.start, options.end, [], "", message=row.message)
    warehouse = open_warehouse(settings.warehouse_url, settings)
    state = open_state(settings.state_url, settings, read_only=True)
    windows = (
        parse_exclusions(source.read_exclusions()).for_check(check.name) if check.type is CheckType.ANOMALY else ()
    )
    return run_backtest(check, warehouse, state, settings, options, windows)
