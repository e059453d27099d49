"""The `check_results` history table: one definition for SQLite, BigQuery and the Terraform test."""

# (column, BigQuery type, mode); SQLite uses the affinity in SQLITE_TYPES.
CHECK_RESULTS_SCHEMA: list[tuple[str, str, str]] = [
    ("run_id", "STRING", "REQUIRED"),
    ("check_name", "STRING", "REQUIRED"),
    ("checked_at", "TIMESTAMP", "REQUIRED"),
    ("status", "STRING", "REQUIRED"),
    ("value", "FLOAT64", "NULLABLE"),
    ("row_count", "INT64", "NULLABLE"),
    ("message", "STRING", "NULLABLE"),
    ("duration_ms", "INT64", "NULLABLE"),
    ("bytes_processed", "INT64", "NULLABLE"),
    ("notified", "BOOL", "NULLABLE"),
    ("slack_channel", "STRING", "NULLABLE"),
    ("slack_ts", "STRING", "NULLABLE"),
]

SQLITE_TYPES = {"STRING": "TEXT", "TIMESTAMP": "TEXT", "FLOAT64": "REAL", "INT64": "INTEGER", "BOOL": "INTEGER"}

COLUMNS = [name for name, _, _ in CHECK_RESULTS_SCHEMA]
