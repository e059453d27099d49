"""Secrets never leave the process: the configured tokens and anything shaped like a Slack token are masked
in every log line, error, JSON answer, history row and Slack message, and text quoted from outside is capped."""

from __future__ import annotations

import logging
import re
import threading

# Slack tokens: xoxb- (bot), xoxp- (user), xoxa-/xoxr-/xoxs-, rotating xoxe.xoxb-… and refresh xoxe-…, app xapp-…
SLACK_TOKEN = re.compile(r"(?:xox[a-z]?|xapp)[-.][A-Za-z0-9._-]*")
MASK = "[redacted]"
QUOTE_CHARS = 500  # of a text from outside (a server's error, an exception) quoted in a message
MIN_SECRET_CHARS = 8  # shorter "secrets" would mask ordinary words

_secrets: set[str] = set()
_lock = threading.Lock()


def register(secret: str | None) -> None:
    """A secret read at run time (the bot token): masked wherever it appears from now on."""
    if secret and len(secret) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return SLACK_TOKEN.sub(MASK, text)


def quote(text: object, limit: int = QUOTE_CHARS) -> str:
    """Outside text, safe to log or show: secrets masked, at most `limit` characters."""
    clean = redact(str(text))
    if len(clean) <= limit:
        return clean
    return clean[: max(0, limit - 1)] + "…"


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
