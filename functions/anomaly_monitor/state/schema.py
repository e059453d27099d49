"""The state tables `check_results` and `incident_events`: one definition for SQLite, BigQuery and Terraform."""

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

# What people did to an incident from Slack (SPEC "History and alert state"), append-only.
INCIDENT_EVENTS_SCHEMA: list[tuple[str, str, str]] = [
    ("event_id", "STRING", "REQUIRED"),
    ("check_name", "STRING", "REQUIRED"),
    ("slack_channel", "STRING", "NULLABLE"),
    ("slack_ts", "STRING", "NULLABLE"),
    ("action", "STRING", "REQUIRED"),
    ("until", "TIMESTAMP", "NULLABLE"),
    ("user_id", "STRING", "NULLABLE"),
    ("user_name", "STRING", "NULLABLE"),
    ("at", "TIMESTAMP", "REQUIRED"),
    ("detail", "STRING", "NULLABLE"),
]

SQLITE_TYPES = {"STRING": "TEXT", "TIMESTAMP": "TEXT", "FLOAT64": "REAL", "INT64": "INTEGER", "BOOL": "INTEGER"}

COLUMNS = [name for name, _, _ in CHECK_RESULTS_SCHEMA]
EVENT_COLUMNS = [name for name, _, _ in INCIDENT_EVENTS_SCHEMA]
