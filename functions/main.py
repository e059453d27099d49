"""The Cloud Functions: `run_checks(request)`, a thin HTTP door onto the monitor's core, and `slack_actions(request)`,
the Request URL of the Slack app's buttons (deployed as a second function from the same source).

Importing this module stays cheap (every cold start pays for it): the core and its clients are imported
and built on the first request, then reused by the instance. Every answer but a run's 200 is a JSON error,
including the ones Flask gives itself (functions-framework's 404 for /favicon.ico) and a crash (500).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import TYPE_CHECKING, Any

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

if TYPE_CHECKING:
    from anomaly_monitor.notifiers.interactivity import Endpoint
    from anomaly_monitor.settings import Settings

FIELDS = {"checks": list, "tags": list, "force": bool, "dry_run": bool}
EXAMPLE = '{"tags": ["hourly"]}'
BODY_LIMIT = 64 * 1024  # bytes: a body names checks and tags, so this is generous
log = logging.getLogger("anomaly_monitor")


class BadRequest(ValueError):
    """The body is not what the API takes; answered with 400 and the reason."""


@functools.cache
def settings() -> Settings:
    from anomaly_monitor import logs
    from anomaly_monitor.settings import Settings

    loaded = Settings.from_env()
    logs.configure(loaded.log_format)
    return loaded


def read_json(request: flask.Request) -> Any:
    """The body as JSON; BadRequest for anything else (too large, not UTF-8, malformed, nested too deep)."""
    if (request.content_length or 0) > BODY_LIMIT:
        raise BadRequest(f"the body is {request.content_length:,} bytes; the API takes at most {BODY_LIMIT:,}")
    raw = request.stream.read(BODY_LIMIT + 1)  # never more, when a chunked body gives no Content-Length
    if len(raw) > BODY_LIMIT:
        raise BadRequest(f"the body is larger than {BODY_LIMIT:,} bytes; the API takes at most {BODY_LIMIT:,}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text: byte {exc.start} cannot be decoded") from None
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays or objects nested thousands deep
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise BadRequest(
            f'the body must be a JSON object such as {{"tags": ["hourly"]}}; it is not JSON: {reason}'
        ) from None


def parse_body(request: flask.Request) -> dict[str, Any]:
    body = read_json(request)
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object such as {EXAMPLE}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)[:200]}; the body takes {', '.join(FIELDS)}")
    for name, kind in FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not isinstance(value, kind) or (kind is list and not strings):
            wanted = "a list of strings" if kind is list else "true or false"
            raise BadRequest(f"field {name!r} must be {wanted}, got {json.dumps(value)[:100]}")
    return body


def error(status: int, message: str) -> tuple[flask.Response, int]:
    return flask.jsonify({"error": message}), status


def http_error(exc: HTTPException) -> tuple[flask.Response, int]:
    """Flask's own answers (functions-framework's 404 for /favicon.ico, any other HTTP error) as JSON too."""
    return error(exc.code or 500, exc.description or exc.name)


def crash(exc: Exception) -> tuple[flask.Response, int]:
    log.error("the function failed", exc_info=exc)
    return error(500, f"the function failed ({type(exc).__name__}); its logs have the details")


functions_framework.errorhandler(HTTPException)(http_error)
functions_framework.errorhandler(Exception)(crash)


def run_checks(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """POST runs the selected checks and answers the run's JSON document; 500 only if the run could not happen."""
    if request.method != "POST":
        response, status = error(405, f"method {request.method} not allowed: POST a JSON body")
        response.headers["Allow"] = "POST"
        return response, status
    try:
        body = parse_body(request)
    except BadRequest as exc:
        return error(400, str(exc))

    from anomaly_monitor.errors import MonitorError, UnknownCheckError
    from anomaly_monitor.redact import redact
    from anomaly_monitor.runner import RunOptions
    from anomaly_monitor.service import execute

    options = RunOptions(
        checks=tuple(body.get("checks") or ()),
        tags=tuple(body.get("tags") or ()),
        force=bool(body.get("force")),
        dry_run=bool(body.get("dry_run")),
    )
    try:
        report = execute(settings(), options)
    except UnknownCheckError as exc:
        return error(400, str(exc))
    except MonitorError as exc:
        # one line the monitoring matches (Terraform's log-based alert); Cloud Scheduler retries the 500
        log.error("the run could not happen: %s", exc, exc_info=True, extra={"event": "run_failed"})
        return error(500, redact(str(exc)))
    return flask.jsonify(report.to_json()), 200  # the runner logged the run's summary line


@functools.cache
def clicks() -> Endpoint:
    """The buttons' endpoint of this instance: signing secret, state store and Slack client, built on first use."""
    from anomaly_monitor.notifiers.interactivity import Endpoint

    return Endpoint.from_settings(settings())


def slack_actions(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """A click on an incident's button: 401 unless Slack signed it, then recorded once and shown in Slack."""
    from anomaly_monitor.notifiers.interactivity import MAX_BODY_BYTES

    if request.method != "POST":
        response, status = error(405, f"method {request.method} not allowed: Slack POSTs clicks here")
        response.headers["Allow"] = "POST"
        return response, status
    body = request.stream.read(MAX_BODY_BYTES + 1)  # never more, whatever Content-Length says (or if it is absent)
    if len(body) > MAX_BODY_BYTES:
        return error(413, f"the body is larger than {MAX_BODY_BYTES} bytes: not a click from Slack")

    from anomaly_monitor.errors import MonitorError
    from anomaly_monitor.redact import redact

    try:
        answer = clicks().handle(body, dict(request.headers.items()))
    except Exception as exc:  # no signing secret, the state store unreachable, or a bug: nothing was recorded
        log.error("a Slack action could not be handled: %s", exc, exc_info=True, extra={"event": "slack_action_failed"})
        reason = str(exc) if isinstance(exc, MonitorError) else f"unexpected {type(exc).__name__}"
        return error(500, redact(reason))
    return flask.jsonify(answer.body), answer.status
