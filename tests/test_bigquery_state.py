"""The BigQuery state store and a whole run on BigQuery, against a local BigQuery emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from urllib.parse import urlencode

import pytest

from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.models import Action, HistoryRecord, IncidentEvent, NoticeEvent, NoticeRecord, Status
from anomaly_monitor.notifiers.console import ConsoleNotifier
from anomaly_monitor.notifiers.interactivity import Endpoint, Responder
from anomaly_monitor.notifiers.slack import SlackNotifier
from anomaly_monitor.notifiers.slack_client import web_client
from anomaly_monitor.runner import Backends, RunOptions, run
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.csv_source import CsvSource
from anomaly_monitor.state import open_state
from anomaly_monitor.state.bigquery import BigQueryStateStore
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA, INCIDENT_EVENTS_SCHEMA, NOTICES_SCHEMA
from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from tests import bq_emulator
from tests.recording_proxy import recording
from tests.servers import function_server, post
from tests.slack_server import TOKEN, serving

bigquery_emulator = bq_emulator.bigquery_emulator
NOW = dt.datetime.now(dt.UTC)


def new_dataset(emulator: bq_emulator.Emulator) -> str:
    dataset = f"state_{uuid.uuid4().hex[:8]}"
    bigquery_client(emulator.project, emulator.endpoint).create_dataset(dataset)
    return dataset


def store_in(emulator: bq_emulator.Emulator, dataset: str) -> BigQueryStateStore:
    settings = Settings(bigquery_api_endpoint=emulator.endpoint)
    store = open_state(f"bigquery://{emulator.project}/{dataset}", settings)
    assert isinstance(store, BigQueryStateStore)
    return store


def record(name: str, minutes_ago: int, status: Status = Status.OK, **extra) -> HistoryRecord:
    values = dict(value=None, row_count=None, message="", duration_ms=5, bytes_processed=None, notified=False)
    values |= dict(slack_channel=None, slack_ts=None) | extra
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=minutes_ago)
    return HistoryRecord(run_id=f"run{minutes_ago}", check_name=name, checked_at=at, status=status, **values)


def test_the_tables_are_created_day_partitioned_and_clustered(bigquery_emulator: bq_emulator.Emulator) -> None:
    dataset = new_dataset(bigquery_emulator)
    store = store_in(bigquery_emulator, dataset)
    assert store.latest(["a"], NOW) == {}
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    legacy = {"FLOAT": "FLOAT64", "INTEGER": "INT64", "BOOLEAN": "BOOL"}  # BigQuery answers these names
    for name, schema, partitioning in (
        ("check_results", CHECK_RESULTS_SCHEMA, "checked_at"),
        ("notices", NOTICES_SCHEMA, "recorded_at"),
        ("incident_events", INCIDENT_EVENTS_SCHEMA, "at"),
    ):
        table = client.get_table(f"{bigquery_emulator.project}.{dataset}.{name}")
        assert [(f.name, legacy.get(f.field_type, f.field_type), f.mode) for f in table.schema] == schema
        assert table.time_partitioning.type_ == "DAY"
        assert table.time_partitioning.field == partitioning
        assert table.clustering_fields == ["check_name"]


def test_the_newest_row_of_each_check_carries_its_state(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    store.append([record("a", 30), record("b", 25, Status.ALERT, value=7.5, row_count=3, notified=True)])
    store.append(
        [
            record("a", 20, Status.ALERT, message="4 rows", slack_channel="C1", slack_ts="1.2", notified=True),
            record("a", 10, Status.ERROR, message="boom", bytes_processed=1024, incident_id="i1", failing_runs=2),
            record("a", 5, Status.INVALID, message="bad row"),
            record("_registry", 5, Status.ERROR, message="sheet gone", incident_id="r1", failing_runs=1),
        ]
    )
    latest = store.latest(["a", "b", "c"], NOW)
    assert set(latest) == {"a", "b", "_registry"}, "reserved names come without being asked for"
    a = latest["a"]
    assert (a.status, a.message, a.incident_id, a.failing_runs, a.bytes_processed) == (
        Status.ERROR,
        "boom",
        "i1",
        2,
        1024,
    )
    b = latest["b"]
    assert (b.value, b.row_count, b.notified, b.checked_at.tzinfo, b.failing_runs) == (7.5, 3, True, dt.UTC, None)


def test_older_rows_are_found_in_wider_windows(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    store.append([record("weekly", 60 * 24 * 6, Status.ALERT, incident_id="w1", failing_runs=1)])
    store.append([record("monthly", 60 * 24 * 80, Status.OK, failing_runs=0)])
    latest = store.latest(["weekly", "monthly"], NOW)
    assert latest["weekly"].incident_id == "w1"
    assert latest["monthly"].status is Status.OK


def test_points_are_the_newest_judged_values(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    store.append([record("m", 40 - i, Status.OK, value=float(i)) for i in range(5)])
    store.append([record("m", 1, Status.ERROR, value=None), record("m", 0, Status.ALERT, value=99.0)])
    points = store.points(["m"], dt.datetime.now(dt.UTC), limit=3)
    assert [v for _, v in points["m"]] == [3.0, 4.0, 99.0]


def test_pending_notices_are_the_unsettled_ones(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))

    def event(notice_id: str, kind: str, event: NoticeEvent, based_on: str = "r0") -> NoticeRecord:
        at = dt.datetime.now(dt.UTC)
        return NoticeRecord(notice_id, "a", event, at, "r1", kind, NOW, based_on=based_on, incident_id="i1")

    store.append_notices([event("n1", "opened", NoticeEvent.ATTEMPT), event("n2", "resolved", NoticeEvent.ATTEMPT)])
    store.append_notices([event("n2", "resolved", NoticeEvent.FAILED), event("n3", "reminder", NoticeEvent.ATTEMPT)])
    store.append_notices([event("n3", "reminder", NoticeEvent.FAILED), event("n4", "opened", NoticeEvent.ATTEMPT)])
    store.append_notices([event("n4", "opened", NoticeEvent.DELIVERED, based_on="r7")])
    pending = store.pending_notices(["a"], NOW, {"a": "r5"})  # r5 recorded its results after all of these
    assert {(p.notice_id, p.event) for p in pending} == {("n1", NoticeEvent.ATTEMPT), ("n2", NoticeEvent.FAILED)}
    uncommitted = store.pending_notices(["a"], NOW, {"a": "r7"})  # n4's run died before recording
    assert {p.notice_id for p in uncommitted} == {"n1", "n2", "n4"}


def test_a_table_of_an_older_version_gains_the_new_columns_and_keeps_its_rows(
    bigquery_emulator: bq_emulator.Emulator,
) -> None:
    from google.cloud import bigquery

    dataset = new_dataset(bigquery_emulator)
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    table = bigquery.Table(
        f"{bigquery_emulator.project}.{dataset}.check_results",
        schema=[bigquery.SchemaField(n, t, mode=m) for n, t, m in CHECK_RESULTS_SCHEMA[:12]],
    )
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field="checked_at")
    client.create_table(table)
    old = {"run_id": "old1", "check_name": "a", "checked_at": (NOW - dt.timedelta(hours=1)).isoformat()}
    old |= {"status": "alert", "message": "3 rows", "notified": True, "slack_channel": "C1", "slack_ts": "1.5"}
    assert client.insert_rows_json(table, [old]) == []

    store = store_in(bigquery_emulator, dataset)
    [row] = store.latest(["a"], NOW).values()
    assert (row.run_id, row.status, row.slack_ts, row.incident_id, row.failing_runs) == (
        "old1",
        Status.ALERT,
        "1.5",
        None,
        None,
    )
    rows = client.query(f"SELECT incident_id, cause FROM `{table.reference}`").result()
    assert [tuple(r.values()) for r in rows] == [(None, None)], "the added columns are there, NULL in old rows"


def test_a_missing_dataset_is_a_state_error(bigquery_emulator: bq_emulator.Emulator) -> None:
    from anomaly_monitor.errors import StateError

    store = store_in(bigquery_emulator, "no_such_dataset")
    with pytest.raises(StateError, match="no_such_dataset does not exist"):
        store.latest(["a"], NOW)


def test_a_read_only_store_reads_what_is_there_and_creates_nothing(bigquery_emulator: bq_emulator.Emulator) -> None:
    """What the backtest opens: no table is created, missing ones read as empty, and nothing can be written."""
    from anomaly_monitor.errors import StateError

    settings = Settings(bigquery_api_endpoint=bigquery_emulator.endpoint)
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    empty = new_dataset(bigquery_emulator)
    reader = open_state(f"bigquery://{bigquery_emulator.project}/{empty}", settings, read_only=True)
    assert reader.points(["m"], NOW) == {} and reader.latest(["m"], NOW) == {}
    assert reader.pending_notices(["m"], NOW, {}) == []
    assert reader.incident_events(["m"], NOW) == [] and reader.clicked_incident("m", "C1", "1.5", NOW) == (None, [])
    with pytest.raises(StateError, match="opened read-only"):
        reader.append([record("m", 1, Status.OK, value=1.0)])
    with pytest.raises(StateError, match="opened read-only"):
        reader.append_events([click("e1", "m", "1.5", Action.MUTE, 1)])
    assert list(client.list_tables(empty)) == []

    dataset = new_dataset(bigquery_emulator)
    writer = store_in(bigquery_emulator, dataset)
    writer.append([record("m", 40 - i, Status.OK, value=float(i)) for i in range(5)])
    reader = open_state(f"bigquery://{bigquery_emulator.project}/{dataset}", settings, read_only=True)
    now = dt.datetime.now(dt.UTC)
    assert reader.points(["m"], now) == writer.points(["m"], now) != {}
    assert [v for _, v in reader.points(["m"], now - dt.timedelta(minutes=37))["m"]] == [0.0, 1.0, 2.0, 3.0]

    missing = open_state(f"bigquery://{bigquery_emulator.project}/no_such_dataset", settings, read_only=True)
    with pytest.raises(StateError, match="no_such_dataset does not exist"):
        missing.points(["m"], NOW)


def test_a_run_on_bigquery_records_and_remembers(bigquery_emulator: bq_emulator.Emulator, tmp_path) -> None:
    """One end-to-end run: checks from CSV, queries and history on the emulator, alerts on the console."""
    dataset = new_dataset(bigquery_emulator)
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.query(f"CREATE TABLE {dataset}.orders (id INT64, status STRING, amount FLOAT64)").result()
    client.query(f"INSERT INTO {dataset}.orders VALUES (1, 'authorised', 10), (2, 'settled', 20), (3, 'authorised', 5)")
    checks = tmp_path / "checks.csv"
    checks.write_text(
        "name,type,sql,min,max\n"
        "unsettled,rows,SELECT id FROM orders WHERE status = 'authorised' ORDER BY id,,\n"
        "total,threshold,SELECT SUM(amount) AS value FROM orders,,100\n"
        "broken,rows,SELECT * FROM missing_table,,\n"
    )
    settings = Settings(bigquery_api_endpoint=bigquery_emulator.endpoint, max_workers=4)
    url = f"bigquery://{bigquery_emulator.project}/{dataset}"
    backends = Backends(
        source=CsvSource(checks),
        warehouse=BigQueryWarehouse.from_url(url, settings),
        state=store_in(bigquery_emulator, dataset),
        notifier=ConsoleNotifier(None),
        settings=settings,
    )
    report = run(backends, RunOptions(force=True))
    by_name = {r.name: r for r in report.results}
    assert by_name["unsettled"].status is Status.ALERT
    assert by_name["unsettled"].row_count == 2 and by_name["unsettled"].rows == [{"id": 1}, {"id": 3}]
    assert (by_name["total"].status, by_name["total"].value) == (Status.OK, 35)
    assert by_name["broken"].status is Status.ERROR and "missing_table" in by_name["broken"].message

    latest = backends.state.latest(["unsettled", "total", "broken"], dt.datetime.now(dt.UTC))
    assert {name: row.status for name, row in latest.items()} == {
        "unsettled": Status.ALERT,
        "total": Status.OK,
        "broken": Status.ERROR,
    }
    assert latest["unsettled"].run_id == report.run_id
    assert latest["unsettled"].incident_id == report.run_id and latest["unsettled"].failing_runs == 1
    assert latest["unsettled"].announced == "alert", "the console told of it"

    again = run(backends, RunOptions(force=True))
    latest = backends.state.latest(["unsettled"], dt.datetime.now(dt.UTC))
    assert latest["unsettled"].run_id == again.run_id
    assert (latest["unsettled"].incident_id, latest["unsettled"].failing_runs) == (report.run_id, 2)


def test_timestamps_at_the_edges_of_the_allowed_years_read_back(bigquery_emulator: bq_emulator.Emulator) -> None:
    from anomaly_monitor.state.schema import from_values

    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    first, last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    store.append([dataclasses.replace(record("early", 0), checked_at=first)])
    store.append([dataclasses.replace(record("late", 0), checked_at=last)])
    assert store.latest(["late"], last)["late"].checked_at == last
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    [row] = client.query(f"SELECT * FROM `{store.table_id}` WHERE check_name = 'early'").result()
    assert from_values(HistoryRecord, dict(row.items())).checked_at == first  # latest() looks back; the row round-trips


def test_two_invocations_of_one_instance_check_the_table_once(bigquery_emulator: bq_emulator.Emulator, tmp_path):
    """The function's clients and its table check live per instance, not per request: seen on the wire."""
    dataset = new_dataset(bigquery_emulator)
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.query(f"CREATE TABLE {dataset}.orders (id INT64, status STRING)").result()
    (tmp_path / "checks.csv").write_text("name,sql\nunsettled,SELECT id FROM orders WHERE status = 'authorised'\n")
    url = f"bigquery://{bigquery_emulator.project}/{dataset}"
    with recording(bigquery_emulator.endpoint) as proxy:
        settings = {
            "CHECKS_SOURCE": str(tmp_path / "checks.csv"),
            "WAREHOUSE_URL": url,
            "STATE_URL": url,
            "BIGQUERY_API_ENDPOINT": proxy.url,
        }
        with function_server(settings, tmp_path / "server.log") as function:
            answers = [post(function, {"force": True}) for _ in range(2)]
    assert [status for status, _ in answers] == [200, 200], (tmp_path / "server.log").read_text()[-2000:]
    assert [doc["checks"][0]["status"] for _, doc in answers] == ["ok", "ok"]
    project = f"/bigquery/v2/projects/{bigquery_emulator.project}"
    assert proxy.count("POST", f"{project}/datasets/{dataset}/tables/check_results/insertAll") == 2
    assert proxy.count("GET", f"{project}/datasets/{dataset}/tables/check_results") == 1
    assert proxy.count("GET", f"{project}/datasets/{dataset}/tables/notices") == 1


def click(event_id: str, check: str, ts: str, action: Action, minutes_ago: int, **extra) -> IncidentEvent:
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=minutes_ago)
    values = dict(until=None, user_id="U0ANA", user_name="ana", detail=None) | extra
    return IncidentEvent(event_id, check, "C1", ts, action, at=at, **values)


def test_a_click_is_looked_up_in_one_query_with_the_clicks_on_its_message(
    bigquery_emulator: bq_emulator.Emulator,
) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    ts = f"{(NOW - dt.timedelta(hours=2)).timestamp():.6f}"
    store.append([record("a", 60, Status.ALERT, slack_channel="C1", slack_ts=ts, incident_id="i1", failing_runs=1)])
    store.append([record("a", 30, Status.ALERT, slack_channel="C1", slack_ts=ts, incident_id="i1", failing_runs=2)])
    store.append([record("a", 20, Status.INVALID)])
    until = NOW.replace(microsecond=0) + dt.timedelta(hours=4)
    store.append_events(
        [
            click("e1", "a", ts, Action.ACKNOWLEDGE, 25),
            click("e2", "a", ts, Action.SNOOZE, 24, until=until, detail='{"choice": "4h"}'),
            click("e3", "a", "1.000100", Action.MUTE, 23),  # another message
            click("e4", "b", ts, Action.MUTE, 22),  # another check
        ]
    )
    store.append_events([click("e1", "a", ts, Action.ACKNOWLEDGE, 25)])  # Slack delivered it twice
    row, events = store.clicked_incident("a", "C1", ts, NOW)
    assert row is not None and (row.run_id, row.failing_runs, row.slack_ts) == ("run30", 2, ts)
    assert [(e.event_id, e.action, e.until) for e in events] == [
        ("e1", Action.ACKNOWLEDGE, None),
        ("e2", Action.SNOOZE, until),
    ]
    assert events[1].detail == '{"choice": "4h"}' and events[0].at.tzinfo == dt.UTC
    assert store.clicked_incident("a", "C2", ts, NOW) == (row, []), "no clicks on that message yet"
    assert store.clicked_incident("nobody", "C1", ts, NOW) == (None, [])
    assert store.clicked_incident("a", "C1", "not-a-ts", NOW) == (None, [])


def test_a_runs_read_of_incident_events_keeps_one_row_per_click(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    store.append_events([click("e1", "a", "1.1", Action.ACKNOWLEDGE, 30), click("e2", "b", "2.2", Action.MUTE, 20)])
    store.append_events([click("e1", "a", "1.1", Action.ACKNOWLEDGE, 30), click("e3", "c", "3.3", Action.MUTE, 10)])
    events = store.incident_events(["a", "b"], NOW)
    assert [(e.event_id, e.check_name, e.action) for e in events] == [
        ("e1", "a", Action.ACKNOWLEDGE),
        ("e2", "b", Action.MUTE),
    ]
    assert store.incident_events(["a", "b"], NOW - dt.timedelta(minutes=25)) == events[:1], "as of the run's time"


def test_a_click_on_bigquery_is_one_query_and_one_row_and_the_next_run_honours_it(
    bigquery_emulator: bq_emulator.Emulator, tmp_path
) -> None:
    """The buttons on the cloud's state store: slack_actions' endpoint and the runs, with the local Slack."""
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE metric (value REAL)")
        conn.execute("INSERT INTO metric VALUES (100)")
    checks = tmp_path / "checks.csv"
    checks.write_text("name,type,sql,max,renotify_hours\ntoo_high,threshold,SELECT value FROM metric,50,1\n")
    dataset = new_dataset(bigquery_emulator)
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    with serving() as slack:

        def run_at(minutes: float) -> None:
            backends = Backends(
                source=CsvSource(checks),
                warehouse=SqliteWarehouse(warehouse),
                state=store_in(bigquery_emulator, dataset),
                notifier=SlackNotifier(web_client(TOKEN, slack.base_url), "#alerts", pace_s=0),
                settings=Settings(bigquery_api_endpoint=bigquery_emulator.endpoint),
            )
            run(backends, RunOptions(force=True, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)))

        run_at(-1)
        [message] = slack.top_level()
        block = next(b for b in message["blocks"] if b["type"] == "actions")
        payload = {
            "type": "block_actions",
            "user": {"id": "U0ANA", "username": "ana"},
            "container": {"type": "message", "channel_id": message["channel"], "message_ts": message["ts"]},
            "message": {"ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
            "actions": [
                {
                    "action_id": "acknowledge",
                    "block_id": block["block_id"],
                    "value": "acknowledge",
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()))
        signature = "v0=" + hmac.new(b"s3cr3t-signing", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        store = store_in(bigquery_emulator, dataset)
        endpoint = Endpoint("s3cr3t-signing", store, lambda: Responder(TOKEN, slack.base_url))
        jobs_before = len(list(client.list_jobs()))

        answer = endpoint.handle(body, {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})

        assert (answer.status, answer.body["outcome"]) == (200, "recorded")
        assert len(list(client.list_jobs())) - jobs_before == 1, "one query job: the lookup (the row is streamed)"
        [row] = client.query(f"SELECT check_name, action, user_name FROM `{store.events_id}`").result()
        assert tuple(row.values()) == ("too_high", "acknowledge", "ana")
        replies = len(slack.replies(message["ts"]))
        run_at(120)  # past renotify_hours: acknowledged, so no reminder
        assert len(slack.replies(message["ts"])) == replies
