"""Alert charts: a real PNG of the expected size, and importing the module stays cheap."""

from __future__ import annotations

import datetime as dt
import struct
import subprocess
import sys
import time
from pathlib import Path

from anomaly_monitor.anomaly import judge
from anomaly_monitor.charts import render_chart

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


def _series(n: int = 90) -> list[tuple[dt.datetime, float | None]]:
    start = dt.datetime(2025, 1, 1)
    history: list[tuple[dt.datetime, float | None]] = [
        (start + dt.timedelta(days=i), 100.0 + (i % 7) * 3 + (i % 3)) for i in range(n)
    ]
    return [*history, (start + dt.timedelta(days=n), 400.0)]


def _ihdr_size(png: bytes) -> tuple[int, int]:
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_chart_is_a_png_of_600_by_250() -> None:
    points = _series()
    png = render_chart(points, judge(points, seasonality="day_of_week"), "orders per day")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert _ihdr_size(png) == (600, 250)
    assert len(png) > 1000


def test_chart_copes_with_a_null_newest_value_and_a_one_sided_band() -> None:
    points = [*_series(30)[:-1], (dt.datetime(2025, 3, 1), None)]
    png = render_chart(points, judge(points, direction="up"), "with a NULL")
    assert _ihdr_size(png) == (600, 250)


def test_chart_renders_within_half_a_second_after_import() -> None:
    points = _series()
    judgement = judge(points)
    render_chart(points, judgement, "warm-up")
    started = time.perf_counter()
    for _ in range(3):
        render_chart(points, judgement, "timed")
    assert (time.perf_counter() - started) / 3 < 0.5


def test_importing_charts_does_not_import_matplotlib() -> None:
    code = "import sys, anomaly_monitor.charts; print('matplotlib' in sys.modules)"
    env = {"PYTHONPATH": str(FUNCTIONS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
