"""What the Sheets UI does when a person types into a cell: parse the text, apply the cell's data validation.

The API does not enforce data validation (it applies to people typing), so the local server cannot show what a
drop-down or a strict rule refuses; this does, for the conditions the monitor's sheet uses: ONE_OF_LIST,
BOOLEAN, NUMBER_GREATER(_THAN_EQ) and CUSTOM_FORMULA with the functions its formulas call (AND, OR, NOT,
ISNUMBER, INT, REGEXMATCH, TO_TEXT, COUNTIF, LEFT). Relative references shift from the rule's first cell, as in
Sheets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.sheets_server import Sheet, column_index, entered, formatted, unformatted


class Refused(Exception):
    """A strict rule refused the entry; the message is the rule's help text."""


def type_in(sheet: Sheet, row: int, column: int, text: str, rule_origin: tuple[int, int]) -> None:
    """A person types `text` into (row, column) (0-based); `rule_origin` is the first cell of the rule's range."""
    old = sheet.cells.get((row, column), {})
    is_text = old.get("userEnteredFormat", {}).get("numberFormat", {}).get("type") == "TEXT"
    new = entered(text, "USER_ENTERED", is_text)
    rule = old.get("dataValidation")
    candidate = {**old, **new} if new else {k: v for k, v in old.items() if k != "userEnteredValue"}
    if rule and new and rule.get("strict") and not satisfies(rule, sheet, row, column, candidate, rule_origin):
        raise Refused(rule.get("inputMessage", "Invalid entry"))
    sheet.cells[(row, column)] = candidate


def satisfies(rule: dict[str, Any], sheet: Sheet, row: int, column: int, cell: dict[str, Any], origin) -> bool:
    condition = rule["condition"]
    value = unformatted(cell, "UNFORMATTED_VALUE")
    operands = [v.get("userEnteredValue") for v in condition.get("values", [])]
    kind = condition["type"]
    if kind == "ONE_OF_LIST":
        return formatted(cell).lower() in [o.lower() for o in operands]
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind in ("NUMBER_GREATER", "NUMBER_GREATER_THAN_EQ"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return value > float(operands[0]) if kind == "NUMBER_GREATER" else value >= float(operands[0])
    if kind == "CUSTOM_FORMULA":
        cells = {**sheet.cells, (row, column): cell}
        return bool(Formula(operands[0], cells, (row - origin[0], column - origin[1])).evaluate())
    raise NotImplementedError(kind)


TOKEN = re.compile(
    r'\s*(?:("(?:[^"]|"")*")|(\$?[A-Z]{1,3}\$?\d*(?::\$?[A-Z]{1,3}\$?\d*)?)(?![A-Z_(])|([A-Z_]+)\(|'
    r"(\d+(?:\.\d+)?)|(<>|>=|<=|[=<>,()*]))"
)


class Formula:
    """A small evaluator for the formula subset above; `shift` moves relative references (rows, columns)."""

    def __init__(self, text: str, cells: dict[tuple[int, int], dict[str, Any]], shift: tuple[int, int]) -> None:
        self.tokens = [m for m in TOKEN.finditer(text.removeprefix("="))]
        self.position = 0
        self.cells, self.shift = cells, shift

    def evaluate(self) -> Any:
        value = self.comparison()
        if self.position != len(self.tokens):
            raise ValueError("trailing tokens")
        return plain(value)

    def peek(self) -> str:
        return self.tokens[self.position].group(0).strip() if self.position < len(self.tokens) else ""

    def take(self) -> re.Match[str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def comparison(self) -> Any:
        left = self.term()
        if self.peek() in ("=", "<>", ">", ">=", "<", "<="):
            op = self.take().group(0).strip()
            left, right = plain(left), plain(self.term())
            if isinstance(left, str) and isinstance(right, str):
                left, right = left.lower(), right.lower()
            try:
                return {
                    "=": left == right,
                    "<>": left != right,
                    ">": left > right,
                    ">=": left >= right,
                    "<": left < right,
                    "<=": left <= right,
                }[op]
            except TypeError:  # text against a number: Sheets orders numbers before text
                return op == "<>"
        return left

    def term(self) -> Any:
        token = self.take()
        string, ref, function, number = token.group(1), token.group(2), token.group(3), token.group(4)
        if string is not None:
            return string[1:-1].replace('""', '"')
        if number is not None:
            return float(number)
        if ref is not None:
            return self.reference(ref)
        if function is not None:
            args = []
            while self.peek() != ")":
                args.append(self.comparison())
                if self.peek() == ",":
                    self.take()
            self.take()
            if function == "TO_TEXT" and isinstance(args[0], Ref):
                return args[0].text  # the text the cell shows
            return getattr(self, "f_" + function.lower())(*[plain(a) for a in args])
        raise ValueError(f"unexpected {token.group(0)!r}")

    def reference(self, ref: str) -> Any:
        def cell(part: str) -> tuple[int | None, int]:
            match = re.fullmatch(r"(\$?)([A-Z]{1,3})(\$?)(\d*)", part)
            assert match
            column = column_index(match.group(2)) + (0 if match.group(1) else self.shift[1])
            row = int(match.group(4)) - 1 + (0 if match.group(3) else self.shift[0]) if match.group(4) else None
            return row, column

        parts = ref.split(":")
        if len(parts) == 1:
            row, column = cell(parts[0])
            data = self.cells.get((row, column), {})
            return Ref(unformatted(data, "UNFORMATTED_VALUE"), formatted(data))
        (r0, c0), (r1, c1) = cell(parts[0]), cell(parts[1])
        return [
            unformatted(data, "UNFORMATTED_VALUE")
            for (r, c), data in self.cells.items()
            if c0 <= c <= c1 and (r0 or 0) <= r and (r1 is None or r <= r1)
        ]

    # -- functions ----------------------------------------------------------------------------------------------

    def f_and(self, *args: Any) -> bool:
        return all(bool(a) for a in args)

    def f_or(self, *args: Any) -> bool:
        return any(bool(a) for a in args)

    def f_not(self, value: Any) -> bool:
        return not bool(value)

    def f_isnumber(self, value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def f_int(self, value: Any) -> Any:
        return int(value // 1) if self.f_isnumber(value) else float("nan")

    def f_to_text(self, value: Any) -> str:
        return formatted({"userEnteredValue": _typed(value)}) if value != "" else ""

    def f_regexmatch(self, text: Any, pattern: str) -> bool:
        return isinstance(text, str) and re.search(pattern, text) is not None

    def f_countif(self, values: list[Any], wanted: Any) -> int:
        norm = lambda v: v.lower() if isinstance(v, str) else v  # noqa: E731
        return sum(1 for v in values if v != "" and norm(v) == norm(wanted))

    def f_left(self, text: Any, count: float) -> str:
        return str(text)[: int(count)]


@dataclass(frozen=True)
class Ref:
    """A cell's value and the text it shows."""

    value: Any
    text: str


def plain(value: Any) -> Any:
    return value.value if isinstance(value, Ref) else value


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int | float):
        return {"numberValue": value}
    return {"stringValue": str(value)}
