"""BigQuery's regular expressions: RE2 (linear time, no backtracking), with BigQuery's function semantics.

Matching runs on UTF-8 bytes through google-re2's compiled program directly: its `re`-like wrapper costs about
four times as much per match, which a check calling REGEXP_CONTAINS on every row of a table would feel.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import re2
from re2 import _re2  # type: ignore[attr-defined]  # google-re2-stubs covers the re-like API, not _re2

# A replacement reads `\0`..`\9` (whole match, groups) and `\\` (a backslash), as BigQuery's REGEXP_REPLACE does.
_REWRITE = re.compile(r"\\(.?)", re.DOTALL)
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_DEADLINE_EVERY = 256  # matches between deadline checks


class RegexError(ValueError):
    """RE2 refused a pattern or a replacement; the message is RE2's (or BigQuery's) reason."""


class RegexTimeout(Exception):
    """Matching went on past the caller's deadline."""


@dataclass(frozen=True)
class Pattern:
    text: str
    program: _re2.RE2
    groups: int


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> Pattern:
    """The pattern compiled once per process; RegexError with RE2's reason when RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False  # RE2 would also print the reason on stderr; the caller reports it
    program = _re2.RE2(pattern.encode(), options)
    if not program.ok():
        reason = program.error()
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise RegexError(f"invalid regular expression {pattern!r}: {reason} (BigQuery uses RE2 syntax)")
    return Pattern(pattern, program, program.NumberOfCapturingGroups())


def pattern_error(pattern: str) -> str | None:
    """None when RE2 accepts the pattern, else RE2's reason."""
    try:
        compiled(pattern)
    except RegexError as err:
        return str(err)
    return None


def contains(value: str, pattern: str) -> bool:
    data = value.encode()
    return compiled(pattern).program.Match(_UNANCHORED, data, 0, len(data))[0][0] != -1


def extract(value: str, pattern: str, position: int = 1, occurrence: int = 1, deadline: float = math.inf) -> str | None:
    """REGEXP_EXTRACT: the `occurrence`-th match from `position` (1-based), or its one capturing group."""
    regex = _extracting(pattern)
    if position < 1 or occurrence < 1:
        raise RegexError("REGEXP_EXTRACT: position and occurrence must be at least 1")
    data = value.encode()
    for index, spans in enumerate(_matches(regex, data, _byte_offset(value, position), deadline), 1):
        if index == occurrence:
            return _group(data, spans[regex.groups])
    return None


def extract_all(value: str, pattern: str, deadline: float = math.inf) -> list[str | None]:
    """REGEXP_EXTRACT_ALL: every non-overlapping match (or its capturing group)."""
    regex = _extracting(pattern)
    data = value.encode()
    return [_group(data, spans[regex.groups]) for spans in _matches(regex, data, 0, deadline)]


def instr(
    value: str, pattern: str, position: int = 1, occurrence: int = 1, after: int = 0, deadline: float = math.inf
) -> int:
    """REGEXP_INSTR: where the match (or its one group) starts, 1-based; or just after it ends (`after` = 1)."""
    regex = _extracting(pattern)
    if position < 1 or occurrence < 1 or after not in (0, 1):
        raise RegexError("REGEXP_INSTR: position and occurrence must be at least 1, occurrence_position 0 or 1")
    data = value.encode()
    for index, spans in enumerate(_matches(regex, data, _byte_offset(value, position), deadline), 1):
        if index == occurrence:
            start, end = spans[regex.groups]
            return len(data[: end if after else start].decode()) + 1
    return 0


def replace(
    value: str, pattern: str, replacement: str, max_bytes: int | None = None, deadline: float = math.inf
) -> str:
    """REGEXP_REPLACE; RegexError once the result would exceed `max_bytes` of UTF-8 (None: no cap)."""
    regex, template = compiled(pattern), _template(replacement)
    wanted = max((piece for piece in template if isinstance(piece, int)), default=0)
    if wanted > regex.groups:
        raise RegexError(f"replacement {replacement!r} refers to group {wanted}; {pattern!r} has {regex.groups}")
    data = value.encode()
    pieces: list[bytes] = []
    length = position = 0
    for spans in _matches(regex, data, 0, deadline):
        start, end = spans[0]
        parts = [data[position:start]]
        parts += [piece if isinstance(piece, bytes) else _slice(data, spans[piece]) for piece in template]
        length += sum(map(len, parts))
        if max_bytes is not None and length > max_bytes:
            raise RegexError(f"REGEXP_REPLACE would build a value over {max_bytes:,} bytes")
        pieces += parts
        position = end
    pieces.append(data[position:])
    return b"".join(pieces).decode()


def _matches(regex: Pattern, data: bytes, position: int, deadline: float) -> Iterator[list[tuple[int, int]]]:
    """The spans of each non-overlapping match; an empty match right where the previous one ended is skipped,
    as RE2's GlobalReplace (and so BigQuery) does."""
    end, previous_end, found = len(data), -1, 0
    while position <= end:
        spans = regex.program.Match(_UNANCHORED, data, position, end)
        start, stop = spans[0]
        if start == -1:
            return
        if start == stop == previous_end:
            position = _next_character(data, start)
            continue
        yield spans
        found += 1
        if found % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
            raise RegexTimeout
        previous_end = stop
        position = stop if stop > start else _next_character(data, stop)


def _next_character(data: bytes, index: int) -> int:
    index += 1
    while index < len(data) and data[index] & 0xC0 == 0x80:  # UTF-8 continuation bytes
        index += 1
    return index


def _byte_offset(value: str, position: int) -> int:
    return len(value[: position - 1].encode())


def _slice(data: bytes, span: tuple[int, int]) -> bytes:
    return b"" if span[0] == -1 else data[span[0] : span[1]]


def _group(data: bytes, span: tuple[int, int]) -> str | None:
    return None if span[0] == -1 else data[span[0] : span[1]].decode()


def _extracting(pattern: str) -> Pattern:
    regex = compiled(pattern)
    if regex.groups > 1:
        raise RegexError(f"regular expression {pattern!r} has {regex.groups} capturing groups; at most 1 is allowed")
    return regex


@functools.lru_cache(maxsize=256)
def _template(replacement: str) -> tuple[bytes | int, ...]:
    """The replacement split into UTF-8 text and group numbers, checked once."""
    pieces: list[bytes | int] = []
    position = 0
    for escape in _REWRITE.finditer(replacement):
        pieces.append(replacement[position : escape.start()].encode())
        position = escape.end()
        character = escape.group(1)
        if character.isdigit() and character.isascii():
            pieces.append(int(character))
        elif character == "\\":
            pieces.append(b"\\")
        else:
            raise RegexError(
                f"invalid REGEXP_REPLACE replacement {replacement!r}: a backslash must be followed by a digit "
                "(\\0 for the whole match, \\1..\\9 for groups) or another backslash"
            )
    pieces.append(replacement[position:].encode())
    return tuple(piece for piece in pieces if piece != b"")
