"""The instant a check runs at: time zones as BigQuery names them, and BigQuery's CURRENT_* calls pinned to it."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from anomaly_monitor.errors import QueryError
from anomaly_monitor.readonly import take_parsed

# Each CURRENT_* call and the literal it becomes; a time zone argument picks the wall clock it is read on.
_CALLS = {
    TokenType.CURRENT_TIMESTAMP: ("TIMESTAMP", None),
    TokenType.CURRENT_DATETIME: ("DATETIME", "%Y-%m-%d %H:%M:%S.%f"),
    TokenType.CURRENT_DATE: ("DATE", "%Y-%m-%d"),
    TokenType.CURRENT_TIME: ("TIME", "%H:%M:%S.%f"),
}
_NODES = (exp.CurrentTimestamp, exp.CurrentDatetime, exp.CurrentDate, exp.CurrentTime)
_BIGQUERY = Dialect.get_or_raise("bigquery")


@functools.lru_cache(maxsize=64)
def zone_info(name: str) -> dt.tzinfo:
    """An IANA zone, or a fixed offset such as '+05:30' or '-08', as BigQuery accepts."""
    offset = re.fullmatch(r"(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?", name.strip())
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        delta = dt.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return dt.timezone(sign * delta)
    return zoneinfo.ZoneInfo(name)


def pin_now(sql: str, now: dt.datetime) -> str:
    """`sql` with CURRENT_TIMESTAMP(), CURRENT_DATETIME(), CURRENT_DATE() and CURRENT_TIME() (with or without a
    time zone) replaced by literals of `now`, so BigQuery answers as of the run's instant (--now); everything
    else stays exactly as written."""
    tree = take_parsed(sql)  # what the registry parsed: when it holds no such call, there is nothing to look for
    if tree is not None and tree.find(*_NODES) is None:
        return sql
    try:
        tokens = _BIGQUERY.tokenize(sql)
    except SqlglotError:
        return sql  # the guard parsed it already; BigQuery will say what is wrong
    pieces: list[str] = []
    position = index = 0
    while index < len(tokens):
        token = tokens[index]
        after_dot = index > 0 and tokens[index - 1].token_type == TokenType.DOT  # t.current_date is a column
        if token.token_type not in _CALLS or after_dot:
            index += 1
            continue
        zone, end, index = _argument(sql, tokens, index)
        pieces += [sql[position : token.start], _literal(token.token_type, now, zone)]
        position = end
    return "".join(pieces) + sql[position:]


def _argument(sql: str, tokens: list[Token], index: int) -> tuple[str | None, int, int]:
    """The call's time zone argument as written (None without one), where the call ends, and the next token."""
    call = tokens[index]
    if index + 1 >= len(tokens) or tokens[index + 1].token_type != TokenType.L_PAREN:
        return None, call.end + 1, index + 1  # CURRENT_DATE without parentheses
    depth, close = 0, index + 1
    for close in range(index + 1, len(tokens)):
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(tokens[close].token_type, 0)
        if depth == 0:
            break
    inside = sql[tokens[index + 1].end + 1 : tokens[close].start].strip()
    return inside or None, tokens[close].end + 1, close + 1


def _literal(kind: TokenType, now: dt.datetime, zone: str | None) -> str:
    name, pattern = _CALLS[kind]
    instant = now.astimezone(dt.UTC)
    if pattern is None:
        return f"TIMESTAMP '{instant.isoformat(sep=' ')}'"
    if zone is not None and not re.fullmatch(r"'[^'\\]*'|\"[^\"\\]*\"", zone):
        return f"{name}(TIMESTAMP '{instant.isoformat(sep=' ')}', {zone})"  # a computed zone: BigQuery converts
    try:
        local = instant.astimezone(zone_info(zone[1:-1])) if zone else instant
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as err:
        raise QueryError(f"unknown time zone {zone} in CURRENT_{name}({zone})") from err
    return f"{name} '{local.strftime(pattern)}'"
