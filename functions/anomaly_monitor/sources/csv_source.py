"""The registry as a CSV file (local mode): the same header as the Google Sheet."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from anomaly_monitor.errors import RegistryError
from anomaly_monitor.registry import normalize_rows

EXCLUSIONS_FILE = "exclusions.csv"
log = logging.getLogger(__name__)


class CsvSource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def header(self) -> list[str] | None:
        """The header row as written, or None when the file does not exist yet."""
        try:
            lines = self._lines()
        except RegistryError:
            return None
        return lines[0] if lines else []

    def read_rows(self) -> list[dict[str, str]]:
        lines = self._lines()
        if not lines:
            raise RegistryError(f"checks file {self.path} is empty: it needs a header row")
        return normalize_rows(lines[0], lines[1:])

    def _lines(self) -> list[list[str]]:
        try:
            # utf-8-sig drops the byte-order mark that spreadsheet exports write
            with self.path.open(newline="", encoding="utf-8-sig") as f:
                lines = list(csv.reader(f))
        except FileNotFoundError:
            raise RegistryError(f"checks file {self.path} does not exist (set --checks or CHECKS_SOURCE)") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise RegistryError(f"checks file {self.path} cannot be read: {exc}") from exc
        return lines

    def read_exclusions(self) -> list[dict[str, str]]:
        """`exclusions.csv` beside the checks file, when there is one (rows checked by parse_exclusions)."""
        path = self.path.with_name(EXCLUSIONS_FILE)
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                return list(csv.DictReader(f))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            log.warning("exclusion windows in %s cannot be read, none applied: %s", path, exc)
            return []
