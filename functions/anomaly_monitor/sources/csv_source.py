"""The registry as a CSV file (local mode): the same header as the Google Sheet.

Read the way a careful person would: a stray quote costs its own row, which is reported, and the rows it
would have swallowed are read as rows; bytes that are not UTF-8 cost the row they are in; a cell too large for
a sheet is the registry's to report (registry.CELL_LIMIT), never a reason to refuse the whole file.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from anomaly_monitor.columns import column_letter
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.exclusions import header_problem, mark_unreadable
from anomaly_monitor.registry import UNREADABLE, normalize_header, normalize_rows

LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # physical lines, with their endings
FIX = 'close the quote, or write a quote inside a cell as ""'

# The default (131,072 characters) would refuse the whole file for one oversized cell; the registry reports
# that cell's row instead. This is the csv module's process-wide setting: a larger limit harms no other reader.
csv.field_size_limit(2**31 - 1)


@dataclass
class Record:
    """One row of the file: its cells, or why its quotes are broken (and in which column they broke)."""

    cells: list[str]
    problem: str | None = None
    column: int | None = None


def broken_quote_column(line: str) -> int | None:
    """The column (0-based) in which a line's quoting breaks: a quoted cell that does not close on this line,
    or text after a cell's closing quote."""
    column, i, at_start = 0, 0, True
    while i < len(line):
        if at_start and line[i] == '"':
            end = i + 1
            while (end := line.find('"', end)) != -1 and line.startswith('""', end):
                end += 2
            if end == -1 or line[end + 1 : end + 2] not in ("", ",", "\r", "\n"):
                return column
            i, at_start = end + 1, False
            continue
        if line[i] == ",":
            column, at_start = column + 1, True
        else:
            at_start = False
        i += 1
    return None


def read_records(text: str) -> list[Record]:
    """The file's rows. A row whose quotes break is a Record with a problem, and reading resumes on the line
    after its first: the rows a stray quote would have swallowed into one cell are read as the rows they are."""
    lines = LINES.findall(text)
    records: list[Record] = []
    position = 0
    while position < len(lines):
        reader = csv.reader(lines[position:], strict=True)
        while True:
            before = reader.line_num
            try:
                records.append(Record(next(reader)))
            except StopIteration:
                return records
            except csv.Error as exc:
                first = position + before
                swallowed = reader.line_num - before - 1
                if "end of data" in str(exc):
                    detail = "the cell it opens never closes"
                    detail += f", and would swallow the {swallowed} lines after it" if swallowed else ""
                elif swallowed:
                    last = position + reader.line_num
                    detail = f"the cell it opens runs over the next {swallowed} lines and breaks on line {last}"
                else:
                    detail = "text follows the quote that closes its cell"
                loose = next(csv.reader([lines[first]]), [])  # what the line says if its quotes are ignored
                records.append(Record(loose, detail, broken_quote_column(lines[first])))
                position = first + 1
                break
    return records


def column_name(keys: list[str], index: int | None) -> str:
    """'column "sql"', or by its letter when the header names none: 'column M'."""
    if index is None:
        return "a cell"
    if index < len(keys) and keys[index]:
        return f'column "{keys[index]}"'
    return f"column {column_letter(index)}"


def stray_quote(keys: list[str], record: Record) -> str:
    """Why a record with broken quotes is unreadable, naming the column where they broke."""
    return f'{column_name(keys, record.column)} has a stray quote ("): {record.problem}; {FIX}'


EXCLUSIONS_FILE = "exclusions.csv"
log = logging.getLogger(__name__)


class CsvSource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def header(self) -> list[str] | None:
        """The header row as written, or None when the file does not exist yet."""
        try:
            records = self._records()
        except RegistryError:
            return None
        return records[0].cells if records else []

    def read_rows(self) -> list[dict[str, str]]:
        records = self._records()
        if not records:
            raise RegistryError(f"checks file {self.path} is empty: it needs a header row")
        header, rows = records[0], records[1:]
        if header.problem:
            raise RegistryError(f'checks file {self.path}: the header row has a stray quote ("): {FIX}')
        keys = [normalize_header(cell) for cell in header.cells]
        out = normalize_rows(header.cells, [record.cells for record in rows])
        for record, row in zip(rows, out):
            if record.problem:
                row[UNREADABLE] = stray_quote(keys, record)
        return out

    def _records(self) -> list[Record]:
        try:
            return read_file(self.path)
        except FileNotFoundError:
            raise RegistryError(f"checks file {self.path} does not exist (set --checks or CHECKS_SOURCE)") from None
        except OSError as exc:
            raise RegistryError(f"checks file {self.path} cannot be read: {exc}") from exc

    def read_exclusions(self) -> list[dict[str, str]]:
        """`exclusions.csv` beside the checks file, when there is one, read as carefully as the registry (rows
        checked by parse_exclusions; a row with a stray quote is reported there)."""
        path = self.path.with_name(EXCLUSIONS_FILE)
        try:
            records = read_file(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("exclusion windows in %s cannot be read, none applied: %s", path, exc)
            return []
        if not records:
            return []
        keys = [normalize_header(cell) for cell in records[0].cells]
        rows = []
        for record in records[1:]:
            row = {key: cell for key, cell in zip(keys, record.cells) if key}
            if record.problem:
                row[UNREADABLE] = stray_quote(keys, record)
            rows.append(row)
        return mark_unreadable(rows, header_problem(records[0].cells))


def read_file(path: Path) -> list[Record]:
    """A CSV file's records. Undecodable bytes become lone surrogates, so only the row holding them is invalid
    (registry.py, exclusions.py); the byte-order mark that spreadsheet exports write is dropped."""
    return read_records(path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff"))
