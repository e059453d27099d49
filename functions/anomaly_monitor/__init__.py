"""Serverless SQL anomaly monitor: registry in a sheet, checks on BigQuery, alerts in Slack."""

__version__ = "0.1.0"
