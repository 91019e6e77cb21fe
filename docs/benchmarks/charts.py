"""Draw one chart per benchmark, its figures over time, from docs/benchmarks/history.csv.

    .venv/bin/python docs/benchmarks/charts.py

writes docs/img/bench/<benchmark>.png. Record a new figure by adding a row to the CSV (the
date it was measured, the commit that recorded it) and run this again.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "img" / "bench"

TITLES = {
    "bench_collector": "Collector, /v1/batch (100-event bodies)",
    "bench_collector_browser": "Collector, browser route /v1/t (one event a request)",
    "bench_loader": "Loader, landing log to Delta bronze",
    "bench_microbatch": "One minute's load (60 k events)",
    "bench_freshness": "Freshness: acknowledged to visible (p95)",
    "bench_dbt_overhead": "dbt overhead: a minute through dbt / its SQL run directly",
    "bench_incremental": "Incremental build: a minute at ~10 M / at ~1 M events of history",
    "bench_triggers": "Triggers' share of a minute: at 10 M / at 1.4 M",
    "bench_delivery": "Trigger delivery to a loopback webhook",
    "bench_serving": "Dashboard queries over PostgreSQL (p95)",
}
TARGETS = {
    "bench_freshness": (15, "live tier: target p95 ≤ 15 s"),
    "bench_dbt_overhead": (2, "target ≤ 2"),
    "bench_incremental": (1.5, "target ≤ 1.5"),
    "bench_triggers": (1.5, "target ≤ 1.5"),
}


def read(path: Path) -> dict[str, dict[str, list[dict]]]:
    by_bench: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            row["when"] = datetime.fromisoformat(row["recorded"])
            by_bench[row["benchmark"]][row["series"]].append(row)
    return by_bench


def draw(benchmark: str, series: dict[str, list[dict]], out: Path) -> Path:
    """Each measurement is a tick (recorded time, evenly spaced): the figures come in bursts
    days apart, and a time axis would squeeze each burst into one point."""
    ticks = sorted({r["when"] for rows in series.values() for r in rows})
    position = {when: i for i, when in enumerate(ticks)}
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=100)
    unit = ""
    for name, rows in series.items():
        rows.sort(key=lambda r: r["when"])
        unit = rows[0]["unit"]
        xs = [position[r["when"]] for r in rows]
        ys = [float(r["value"]) for r in rows]
        baseline = "baseline" in name
        line = ax.plot(xs, ys, "--" if baseline else "-", marker="o", label=name)[0]
        for r, x, y in zip(rows, xs, ys, strict=True):
            if r["low"] and r["high"]:  # a range over runs: drawn as a bar
                ax.vlines(x, float(r["low"]), float(r["high"]), color=line.get_color(), alpha=0.5)
            ax.annotate(f"{y:g}", (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
    if benchmark in TARGETS:
        level, label = TARGETS[benchmark]
        ax.axhline(level, color="grey", linestyle=":", linewidth=1, label=label)
    ax.set_title(TITLES.get(benchmark, benchmark), fontsize=10)
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.set_xticks(range(len(ticks)), [t.strftime("%m-%d\n%H:%M") for t in ticks], fontsize=7)
    ax.set_xlim(-0.5, len(ticks) - 0.5 + (0.5 if len(ticks) == 1 else 0.3))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out / f"{benchmark}.png"
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for benchmark, series in read(HERE / "history.csv").items():
        print(draw(benchmark, series, OUT).relative_to(HERE.parent.parent))


if __name__ == "__main__":
    main()
