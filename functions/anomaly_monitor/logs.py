"""Logging to stderr: readable text locally, one JSON object per line for Cloud Logging."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from anomaly_monitor.redact import RedactingFilter

# Cloud Logging reads `severity`, `message` and `time`; the rest lands in jsonPayload, where filters find it
# (jsonPayload.run_id="..." shows one run, jsonPayload.check="..." one check's history).
EXTRA_FIELDS = (
    "event",  # "run_finished" on a run's summary line, "run_failed" when a run could not happen: stable names,
    # the Terraform log-based metric and alert policies match them
    "run_id",
    "check",
    "status",
    "duration_ms",
    "summary",
    "delivery_failures",
    "state_rows_read",
)


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "logger": record.name,
        }
        entry.update({k: getattr(record, k) for k in EXTRA_FIELDS if hasattr(record, k)})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["message"] += "\n" + record.exc_text
        return json.dumps(entry, default=str)


def per_check_line(record: logging.LogRecord) -> bool:
    """A check's own result line: Cloud Logging wants one per check; a terminal shows them in the summary table."""
    return hasattr(record, "check") and hasattr(record, "status") and record.levelno <= logging.INFO


def configure(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())  # first: no formatter ever sees a secret
    if log_format == "json":
        handler.setFormatter(CloudLoggingFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler.addFilter(lambda record: not per_check_line(record))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "google", "slack_sdk", "sqlglot"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
