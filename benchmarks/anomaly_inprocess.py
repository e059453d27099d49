"""Scores the anomaly detector in-process on the shared anomaly benchmark, beside its baselines."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("ANOMALY_BENCH_DIR") or ROOT.parent / "shared" / "anomaly-bench")  # beside the repo
if not (BENCH / "dataset.py").exists():
    sys.exit(f"no anomaly benchmark in {BENCH}: set ANOMALY_BENCH_DIR to the folder holding dataset.py")
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True  # keep the shared bench folder free of __pycache__

import baselines  # noqa: E402
from dataset import Series, load_series  # noqa: E402
from scoring import Alerts, Score, false_alarms_by_context, recall_by, score  # noqa: E402

from anomaly_monitor.anomaly import judge  # noqa: E402

METHODS = ["product", "zscore", "mad", "quantile"]


def run_in_process(series: list[Series], detect: Callable[[list, str], bool]) -> Alerts:
    """Judges every (series, t) with the points up to and including t, exactly as run_bench.py does."""
    alerts: Alerts = {}
    for s in series:
        pts = list(zip(s.times, s.values, strict=False))
        for i in s.eval_idx:
            alerts[(s.series_id, i)] = bool(detect(pts[: i + 1], s.seasonality))
    return alerts


def product(points: list, seasonality: str) -> bool:
    return judge(points, seasonality=seasonality).anomalous


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[j])) for r in [header, *rows]) for j in range(len(header))]
    print(f"\n{title}")
    for r in [header, *rows]:
        print(
            "  ".join(
                str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=False))
            )
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", choices=["synthetic", "nab"], default="synthetic", help="which labeled series to score")
    ap.add_argument("--family", help="only series of families containing this text")
    args = ap.parse_args()
    folder = BENCH / ("nab" if args.set == "nab" else "data")
    series = [s for s in load_series(folder) if not args.family or args.family in s.family]
    results: dict[str, Alerts] = {}
    timings: dict[str, float] = {}
    detectors = {"product": product}
    for name in METHODS[1:]:
        fn, seasonal = baselines.BASELINES[name]
        detectors[name] = lambda p, season, fn=fn, seasonal=seasonal: fn(p, season if seasonal else "none")
    for name, detect in detectors.items():
        t0 = time.monotonic()
        results[name] = run_in_process(series, detect)
        timings[name] = time.monotonic() - t0
    scores = {m: score(series, a, lambda s: s.family) for m, a in results.items()}

    def overall(m: str) -> list[str]:
        sc: Score = scores[m]["all"]
        return [
            m,
            f"{sc.precision:.2f}",
            f"{sc.recall:.2f}",
            f"{sc.f1:.2f}",
            f"{sc.fa_per_1k:.1f}",
            str(sc.false_alarms),
            f"{sc.windows_hit}/{sc.windows}",
            str(sc.ignored_alerts),
            f"{timings[m]:.1f}s",
        ]

    print_table(
        "overall",
        ["method", "precision", "recall", "F1", "FA/1k", "false alarms", "windows hit", "ignored alerts", "time"],
        [overall(m) for m in METHODS],
    )
    groups = sorted(k for k in scores["product"] if k != "all")
    print_table(
        "per family: F1 / false alarms per 1k normal points",
        ["family", *METHODS, "windows"],
        [
            [
                g,
                *(f"{scores[m][g].f1:.2f}/{scores[m][g].fa_per_1k:.0f}" for m in METHODS),
                str(scores["product"][g].windows),
            ]
            for g in groups
        ],
    )
    for field_name in ("kind", "bucket"):
        per = {m: recall_by(series, results[m], field_name) for m in METHODS}
        print_table(
            f"recall by {field_name}",
            [field_name, *METHODS],
            [[k, *(f"{per[m][k][0]}/{per[m][k][1]}" for m in METHODS)] for k in sorted(per["product"])],
        )
    per = {m: false_alarms_by_context(series, results[m]) for m in METHODS}
    print_table(
        "false alarms by context",
        ["context", *METHODS],
        [[k, *(f"{per[m][k][0]}/{per[m][k][1]}" for m in METHODS)] for k in sorted(per["product"])],
    )
    print(
        "\nanomaly F1: "
        + " | ".join(f"{m} {scores[m]['all'].f1:.2f}" for m in METHODS)
        + "; false alarms/1k: "
        + " | ".join(f"{m} {scores[m]['all'].fa_per_1k:.1f}" for m in METHODS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
