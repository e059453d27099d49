"""SlackNotifier with the real slack_sdk WebClient against the local Slack Web API server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator

from anomaly_monitor.errors import DeliveryError, DeliveryUnknown, LookupUnavailable
from anomaly_monitor.models import Check, CheckResult, CheckType, Severity, Status
from anomaly_monitor.notices import MessageRef, Notice, NoticeKind, Sent
from anomaly_monitor.notifiers.console import ConsoleNotifier
from anomaly_monitor.notifiers.slack import EVENT_TYPE, SlackNotifier
from anomaly_monitor.notifiers.slack_client import Budget, web_client
from anomaly_monitor.service import open_notifier
from anomaly_monitor.settings import Settings
from tests.slack_server import PNG_SIGNATURE, TOKEN, SlackServer, serving

NOW = dt.datetime(2024, 5, 2, 10, 0, tzinfo=dt.UTC)
FUNCTIONS = Path(__file__).parents[1] / "functions"
FAST = FixedValueRetryIntervalCalculator(0.01)
TINY_PNG = PNG_SIGNATURE + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


def check(name: str = "late_settle", **changes: Any) -> Check:
    return Check(name=name, sql="SELECT 1", severity=Severity.CRITICAL, **changes)


def alert(c: Check, **changes: Any) -> CheckResult:
    return CheckResult(c.name, str(c.type), Status.ALERT, "3 rows returned", 3.0, 3, [{"id": 1}], check=c, **changes)


def opened(c: Check, result: CheckResult | None = None) -> Notice:
    return Notice(
        kind=NoticeKind.OPENED,
        check=c,
        result=result or alert(c),
        ref=None,
        since=NOW,
        failing_runs=1,
        problem="3 rows returned",
        at=NOW,
        id=f"r1:{c.name}:opened",
    )


def reply(kind: NoticeKind, c: Check, ref: MessageRef, result: CheckResult | None = None, n: int = 2) -> Notice:
    ok = CheckResult(c.name, "rows", Status.OK, "no rows returned", 0.0, 0, check=c)
    result = result or (ok if kind is NoticeKind.RESOLVED else alert(c))
    later = NOW + dt.timedelta(hours=n)
    return Notice(
        kind=kind,
        check=c,
        result=result,
        ref=ref,
        since=NOW,
        failing_runs=n,
        problem="3 rows returned",
        at=later,
        id=f"r{n}:{c.name}:{kind}",
    )


class FakeTime:
    """An injected clock for the time budget: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def budget(self, seconds: float) -> Budget:
        return Budget(self.now + seconds, sleep=self.sleep, clock=lambda: self.now)


def notifier(
    server: SlackServer,
    chart: Any = None,
    token: str = TOKEN,
    *,
    timeout: float = 15,
    budget: Budget | None = None,
    pace_s: float = 0.0,
) -> SlackNotifier:
    client = web_client(token, server.base_url, FAST, timeout=timeout, budget=budget)
    return SlackNotifier(client, default_channel="#alerts", chart=chart, pace_s=pace_s)


def from_settings(server: SlackServer, **changes: Any) -> SlackNotifier:
    settings = Settings(slack_bot_token=TOKEN, slack_api_url=server.url + "/api", slack_default_channel="#alerts")
    return SlackNotifier.from_settings(dataclasses.replace(settings, **changes))


def test_opened_notice_posts_one_top_level_message_and_returns_its_channel_id(slack: SlackServer) -> None:
    payments = slack.add_channel("payments", "C0PAYMENTS")
    sent = notifier(slack).send(opened(check(channel="#payments")))
    [message] = slack.top_level()
    assert sent == Sent(message["ts"], MessageRef(payments, message["ts"]))
    assert message["channel"] == payments
    assert message["blocks"][0]["text"]["text"] == "🔴 Critical · late_settle"
    [call] = slack.calls_to("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.params["unfurl_links"] is False


def test_every_message_carries_its_notice_id_in_metadata(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    sender.send(reply(NoticeKind.REMINDER, c, ref))
    sent = [slack.state.messages[key] for key in sorted(slack.state.messages)]
    assert [m["metadata"]["event_type"] for m in sent] == [EVENT_TYPE, EVENT_TYPE]
    assert [SlackServer.notice(m)["notice_id"] for m in sent] == ["r1:late_settle:opened", "r2:late_settle:reminder"]
    assert {SlackServer.notice(m)["check"] for m in sent} == {"late_settle"}


def test_replies_go_to_the_incident_thread(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    reminder = Notice(
        kind=NoticeKind.REMINDER,
        check=c,
        result=alert(c),
        ref=ref,
        since=NOW,
        failing_runs=30,
        problem="3 rows returned",
        at=NOW + dt.timedelta(days=1),
    )
    assert sender.send(reminder).ref == ref
    [reply] = slack.replies(ref.ts)
    assert "Still failing" in reply["blocks"][0]["text"]["text"]
    assert len(slack.top_level()) == 1


def test_resolved_updates_the_original_message_then_replies(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    ok = CheckResult(c.name, "rows", Status.OK, "no rows returned", 0.0, 0, check=c)
    sender.send(
        Notice(
            kind=NoticeKind.RESOLVED,
            check=c,
            result=ok,
            ref=ref,
            since=NOW,
            failing_runs=4,
            problem="3 rows returned",
            at=NOW + dt.timedelta(hours=1),
        )
    )
    original = slack.state.messages[(ref.channel, ref.ts)]
    assert original["updates"] == 1
    assert original["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"
    [reply] = slack.replies(ref.ts)
    assert reply["text"].startswith("late_settle resolved after 4 runs (1 h)")
    assert [c.method for c in slack.state.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert original["metadata"]["event_payload"]["kind"] == "opened", "an update keeps the message's metadata"


def test_resolved_still_replies_when_the_original_message_is_gone(
    slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    slack.fail("chat.update", "message_not_found")
    ok = CheckResult(c.name, "rows", Status.OK, "no rows returned", 0.0, 0, check=c)
    sender.send(
        Notice(
            kind=NoticeKind.RESOLVED,
            check=c,
            result=ok,
            ref=ref,
            since=NOW,
            failing_runs=2,
            problem="3 rows returned",
            at=NOW,
        )
    )
    assert len(slack.replies(ref.ts)) == 1
    assert "could not be marked resolved (message_not_found)" in caplog.text


def test_resolved_is_undelivered_when_the_update_fails_for_a_reason_a_retry_fixes(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    slack.fail("chat.update", "server_error", times=3)
    ok = CheckResult(c.name, "rows", Status.OK, "no rows returned", 0.0, 0, check=c)
    with pytest.raises(DeliveryError) as caught:
        sender.send(
            Notice(
                kind=NoticeKind.RESOLVED,
                check=c,
                result=ok,
                ref=ref,
                since=NOW,
                failing_runs=2,
                problem="3 rows returned",
                at=NOW,
            )
        )
    assert not isinstance(caught.value, DeliveryUnknown), "no reply went out: certainly undelivered, safe to retry"
    assert len(slack.calls_to("chat.update")) == 3, "chat.update is idempotent: retried"
    assert slack.replies(ref.ts) == []  # no reply to repeat when the next run retries


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("channel_not_found", "check the check's `channel` column"),
        ("not_in_channel", "invite it there with /invite @anomaly-monitor"),
        ("is_archived", "is archived"),
        ("missing_scope", "the app lacks the scope"),
    ],
)
def test_slack_errors_become_delivery_errors_naming_check_channel_and_fix(
    slack: SlackServer, error: str, hint: str
) -> None:
    slack.fail("chat.postMessage", error)
    with pytest.raises(DeliveryError) as caught:
        notifier(slack).send(opened(check(channel="#payments")))
    message = str(caught.value)
    assert message.startswith("check late_settle: opened notice for #payments not delivered: Slack said " + error)
    assert hint in message


def test_unknown_channel_is_channel_not_found_with_invite_hint(slack: SlackServer) -> None:
    with pytest.raises(DeliveryError, match=r"channel_not_found: .*/invite @anomaly-monitor"):
        notifier(slack).send(opened(check(channel="#nowhere")))


def test_app_not_in_channel_is_told_to_invite_it(slack: SlackServer) -> None:
    slack.add_channel("private-ops", member=False)
    with pytest.raises(DeliveryError, match=r"not_in_channel: .* /invite @anomaly-monitor"):
        notifier(slack).send(opened(check(channel="#private-ops")))


def test_wrong_token_is_invalid_auth_and_the_token_is_never_shown(
    slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-wrong-token-123"
    with pytest.raises(DeliveryError, match="invalid_auth: the bot token is not valid") as caught:
        notifier(slack, token=wrong).send(opened(check()))
    assert wrong not in str(caught.value) and wrong not in caplog.text


def test_no_channel_anywhere_is_a_clear_delivery_error(slack: SlackServer) -> None:
    sender = SlackNotifier(web_client(TOKEN, slack.base_url, FAST))
    with pytest.raises(DeliveryError, match="fill its `channel` column or set SLACK_DEFAULT_CHANNEL"):
        sender.send(opened(check()))
    assert slack.state.calls == []


def test_rate_limit_is_retried_after_retry_after(slack: SlackServer) -> None:
    slack.fail("chat.postMessage", "ratelimited", retry_after=0)
    from_settings(slack).send(opened(check()))
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.top_level()) == 1


def test_a_long_retry_after_is_waited_for_within_the_time_budget(slack: SlackServer) -> None:
    clock = FakeTime()
    slack.fail("chat.postMessage", "ratelimited", retry_after=120)
    sender = notifier(slack, budget=clock.budget(300))
    sender.send(opened(check()))
    assert clock.slept == [120]
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.top_level()) == 1


def test_a_retry_after_beyond_the_time_budget_is_left_to_the_next_run(slack: SlackServer) -> None:
    clock = FakeTime()
    slack.fail("chat.postMessage", "ratelimited", retry_after=120)
    with pytest.raises(DeliveryError, match="ratelimited") as caught:
        notifier(slack, budget=clock.budget(60)).send(opened(check()))
    assert not isinstance(caught.value, DeliveryUnknown), "a 429 means Slack did not act"
    assert clock.slept == []
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_a_rate_limit_that_persists_is_undelivered_when_the_budget_is_spent(slack: SlackServer) -> None:
    clock = FakeTime()
    slack.fail("chat.postMessage", "ratelimited", times=50, retry_after=10)
    with pytest.raises(DeliveryError, match="ratelimited"):
        notifier(slack, budget=clock.budget(45)).send(opened(check()))
    assert clock.slept == [10, 10, 10, 10]
    assert slack.top_level() == []


def test_a_server_error_on_a_post_is_not_retried_and_its_outcome_is_unknown(slack: SlackServer) -> None:
    """A 500 may come after Slack acted: posting again could duplicate the alert."""
    slack.fail("chat.postMessage", "server_error_after")
    with pytest.raises(DeliveryUnknown, match="HTTP 500"):
        notifier(slack).send(opened(check()))
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.top_level()) == 1


def test_a_server_error_on_an_update_is_retried(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    slack.fail("chat.update", "server_error")
    sender.send(reply(NoticeKind.RESOLVED, c, ref))
    assert len(slack.calls_to("chat.update")) == 2
    assert len(slack.replies(ref.ts)) == 1


@pytest.mark.parametrize("fault", ["drop", "drop_after"])
def test_a_dropped_answer_is_unknown_and_never_posted_twice(slack: SlackServer, fault: str) -> None:
    slack.fail("chat.postMessage", fault)
    with pytest.raises(DeliveryUnknown, match="no answer from Slack"):
        notifier(slack).send(opened(check()))
    assert len(slack.calls_to("chat.postMessage")) == 1, "the client never repeats a post whose answer was lost"
    assert len(slack.top_level()) == (1 if fault == "drop_after" else 0)


def test_an_answer_slower_than_the_timeout_is_unknown_and_the_message_can_be_found(slack: SlackServer) -> None:
    slack.fail("chat.postMessage", "late", delay_s=1.0)
    sender = notifier(slack, timeout=0.3)
    notice = opened(check())
    with pytest.raises(DeliveryUnknown):
        sender.send(notice)
    [message] = slack.top_level()
    assert notifier(slack).find(notice.id, "C0ALERTS", None) == (message["ts"], None)
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_slack_down_is_undelivered_for_certain_with_reason(
    slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack.down = True
    with pytest.raises(DeliveryError, match=r"Slack could not be reached at http://127\.0\.0\.1") as caught:
        notifier(slack).send(opened(check(owners=("ana@example.com",))))
    assert not isinstance(caught.value, DeliveryUnknown), "a refused connection never carried the request"
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text


def test_a_dropped_connection_on_a_read_is_retried(slack: SlackServer) -> None:
    notice = opened(check())
    notifier(slack).send(notice)
    slack.fail("conversations.history", "drop")
    assert notifier(slack).find(notice.id, "C0ALERTS", None) is not None
    assert len(slack.calls_to("conversations.history")) == 2


# ---------------------------------------------------------------- finding an unconfirmed notice


def test_find_looks_in_the_thread_then_in_the_channel(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    first = opened(c)
    ref = sender.send(first).ref
    assert ref is not None
    later = reply(NoticeKind.REMINDER, c, ref)
    reply_ts = sender.send(later).ts
    finder = notifier(slack)
    assert finder.find(later.id, ref.channel, ref.ts) == (reply_ts, ref.ts)
    assert finder.find(first.id, "#alerts", None) == (ref.ts, None), "a #name is looked up with conversations.list"
    assert finder.find("r9:late_settle:opened", ref.channel, None) is None


def test_find_without_the_history_scope_says_which_scope_is_missing(slack: SlackServer) -> None:
    slack.state.scopes = {"chat:write", "channels:read"}
    with pytest.raises(LookupUnavailable, match="add the scope channels:history"):
        notifier(slack).find("r1:late_settle:opened", "C0ALERTS", None)


def test_a_deleted_incident_message_continues_in_a_new_message_that_says_so(slack: SlackServer) -> None:
    c = check()
    sender = notifier(slack)
    ref = sender.send(opened(c)).ref
    assert ref is not None
    slack.delete(ref.channel, ref.ts)
    sent = sender.send(reply(NoticeKind.REMINDER, c, ref))
    assert sent.moved and sent.ref is not None and sent.ref.ts != ref.ts
    [message] = slack.top_level()
    assert message["ts"] == sent.ts
    assert "is gone; it continues here" in json.dumps(message["blocks"])
    assert SlackServer.notice(message)["kind"] == "reminder"


def test_an_echoed_request_never_puts_the_token_in_the_error(slack: SlackServer) -> None:
    for fault in ("echo", "echo_500"):
        slack.fail("chat.postMessage", fault)
        with pytest.raises(DeliveryError) as caught:
            notifier(slack).send(opened(check()))
        assert TOKEN not in str(caught.value)
        assert "xoxb-" not in str(caught.value)


def test_missing_scope_hint_never_quotes_an_echoed_token(slack: SlackServer) -> None:
    slack.fail("chat.postMessage", "echo")
    slack.fail("chat.postMessage", "missing_scope")
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            notifier(slack).send(opened(check()))
        assert TOKEN not in str(caught.value)


# ---------------------------------------------------------------- pacing


def test_posts_to_one_channel_are_paced_and_other_channels_are_not() -> None:
    clock = FakeTime()
    with serving() as slack:
        slack.add_channel("payments", "C0PAYMENTS")
        sender = notifier(slack, budget=clock.budget(600), pace_s=1.0)
        for name in ("a", "b", "c"):
            sender.send(opened(check(name)))
        sender.send(opened(check("d", channel="#payments")))
    assert clock.slept == [1.0, 1.0], "the second and third post to #alerts waited; #payments did not"


def test_email_owner_is_looked_up_once_per_notifier(slack: SlackServer) -> None:
    slack.add_user("ana@example.com", "U0ANA")
    sender = notifier(slack)
    for name in ("first", "second"):
        sender.send(opened(check(name, owners=("ana@example.com", "nobody@example.com"))))
    assert [c.params["email"] for c in slack.calls_to("users.lookupByEmail")] == [
        "ana@example.com",
        "nobody@example.com",
    ]
    for message in slack.top_level():
        owners = next(b for b in message["blocks"] if "Owners" in b.get("text", {}).get("text", ""))
        assert owners["text"]["text"] == "*Owners:* <@U0ANA> nobody@example.com"


def test_email_lookup_failure_never_blocks_the_alert(slack: SlackServer) -> None:
    slack.fail("users.lookupByEmail", "missing_scope")
    notifier(slack).send(opened(check(owners=("ana@example.com",))))
    assert len(slack.top_level()) == 1


def series_result(c: Check) -> CheckResult:
    points = [(NOW - dt.timedelta(hours=h), float(50 + h % 3)) for h in range(10, 0, -1)] + [(NOW, 12.0)]
    return CheckResult(c.name, "anomaly", Status.ALERT, "12 is low", 12.0, 11, expected=(40.0, 60.0), series=points)


def test_anomaly_chart_is_uploaded_into_the_incident_thread(slack: SlackServer) -> None:
    c = check("signups", type=CheckType.ANOMALY)
    seen: list[CheckResult] = []
    ref = notifier(slack, chart=lambda result: seen.append(result) or TINY_PNG).send(opened(c, series_result(c))).ref
    assert ref is not None
    [upload] = slack.calls_to("upload")
    assert upload.body.startswith(PNG_SIGNATURE)
    [done] = slack.state.files
    assert (done["channel"], done["thread_ts"]) == (ref.channel, ref.ts)
    assert seen[0].series[-1][1] == 12.0
    [complete] = slack.calls_to("files.completeUploadExternal")
    assert "signups" in complete.params["files"]


def test_failed_chart_never_fails_the_alert(slack: SlackServer, caplog: pytest.LogCaptureFixture) -> None:
    c = check("signups", type=CheckType.ANOMALY)
    slack.fail("files.completeUploadExternal", "not_in_channel")
    sent = notifier(slack, chart=lambda result: TINY_PNG).send(opened(c, series_result(c)))
    assert sent.ref is not None and len(slack.top_level()) == 1
    assert "chart not posted" in caplog.text

    def broken(result: CheckResult) -> bytes:
        raise RuntimeError("no matplotlib")

    notifier(slack, chart=broken).send(opened(c, series_result(c)))
    assert len(slack.top_level()) == 2


def test_no_chart_for_rows_alerts(slack: SlackServer) -> None:
    notifier(slack, chart=lambda result: TINY_PNG).send(opened(check()))
    assert slack.calls_to("files.getUploadURLExternal") == []


def test_from_settings_uses_slack_api_url_with_or_without_trailing_slash(slack: SlackServer) -> None:
    for url in (slack.url + "/api", slack.base_url):
        sender = from_settings(slack, slack_api_url=url)
        assert sender.client.base_url == slack.base_url
        sender.send(opened(check()))
    assert len(slack.top_level()) == 2


def test_without_token_the_console_notifier_is_used() -> None:
    assert isinstance(open_notifier(Settings()), ConsoleNotifier)
    assert isinstance(open_notifier(Settings(slack_bot_token=TOKEN)), SlackNotifier)


def test_the_app_manifest_grants_every_scope_the_notifier_uses() -> None:
    import yaml

    from anomaly_monitor.notifiers.slack import SCOPES

    manifest = yaml.safe_load((FUNCTIONS.parent / "slack-app-manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= set(SCOPES)


def test_core_never_imports_slack_sdk() -> None:
    code = "import sys, anomaly_monitor.service, anomaly_monitor.cli; print('slack_sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=FUNCTIONS)
    assert out.stdout.strip() == "False"


def test_a_rate_limited_email_lookup_never_holds_the_alert(slack: SlackServer) -> None:
    clock = FakeTime()
    slack.add_user("ana@example.com", "U0ANA")
    slack.fail("users.lookupByEmail", "ratelimited", times=5, retry_after=30)
    notifier(slack, budget=clock.budget(600)).send(opened(check(owners=("ana@example.com",))))
    assert clock.slept == [], "the post did not wait out the lookup's Retry-After"
    [message] = slack.top_level()
    assert "*Owners:* ana@example.com" in json.dumps(message["blocks"])
