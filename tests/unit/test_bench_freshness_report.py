"""bench_freshness's verdicts: a tier whose probes were not all seen when the drain ended has
no known p95, so its target and its history ratio are reported missed, not met on the probes
that were seen (session 24: 76 of 159 daily probes unseen at 11.1 M, reported met)."""

from __future__ import annotations

from benchmarks.bench_freshness import report


def run(history: str, daily_delays: list[float | None]) -> dict:
    """A measured run: a live and a daily delay per probe (None: the daily one unseen)."""
    probes = [
        {"accepted_at": 0.0, "seen": {"live": 5.0, **({"daily": d} if d is not None else {})}}
        for d in daily_delays
    ]
    return {
        "history": history,
        "events": 1_000_000,
        "elapsed": 480.0,
        "probes": probes,
        "alerts": [],
        "cycles": [],
        "loop_cpu": 400.0,
        "peak_rss": 2 * 2**30,
    }


def daily_lines(capsys) -> list[str]:
    """The daily tier's verdict for the second run, and its history ratio."""
    lines = capsys.readouterr().out.splitlines()
    return [line for line in lines if line.startswith("  daily")][-2:]


def test_a_tier_with_every_probe_seen_is_judged_on_its_p95(capsys):
    report([run("1m", [300.0] * 40), run("10m", [330.0] * 40)])
    verdicts, ratio = daily_lines(capsys)
    assert verdicts.endswith("target p95 <= 600 s: met)")
    assert ratio.endswith("(met)")


def test_a_tier_with_probes_unseen_after_the_drain_is_missed(capsys):
    half_unseen = [300.0] * 20 + [None] * 20
    report([run("1m", [300.0] * 40), run("10m", half_unseen)])
    verdicts, ratio = daily_lines(capsys)
    assert "(20/40 seen" in verdicts
    assert verdicts.endswith("MISSED, 20 probes unseen when the drain ended)")
    assert "MISSED" in ratio


def test_one_probe_unseen_in_forty_still_leaves_the_p95_known(capsys):
    report([run("1m", [300.0] * 40), run("10m", [300.0] * 39 + [None])])
    verdicts, _ = daily_lines(capsys)
    assert verdicts.endswith("target p95 <= 600 s: met)")


def test_a_job_run_beside_the_worker_in_the_window_is_named(tmp_path, capsys):
    """Session 25's run at 10 M events overlapped the nightly predict job (02:45 UTC): a run of
    another job inside the measured window is named, the worker's own runs are not."""
    import sqlite3

    from benchmarks.bench_freshness import runs_beside

    (tmp_path / "history").mkdir()
    with sqlite3.connect(tmp_path / "history" / "runs.db") as conn:
        conn.execute("create table runs (pipeline_name, create_timestamp, update_timestamp)")
        conn.executemany(
            "insert into runs values (?, ?, ?)",
            [
                ("pipeline_worker", "2026-12-07 02:44:16.6", "2026-12-07 03:00:00.0"),
                ("__ASSET_JOB", "2026-12-07 02:50:27.4", "2026-12-07 02:50:54.6"),
                ("predict", "2026-12-07 02:45:00.3", "2026-12-07 02:52:59.1"),
                ("retention", "2026-12-07 02:00:00.0", "2026-12-07 02:01:00.0"),  # before
            ],
        )
    window = (1796611500.0, 1796611980.0)  # 02:45:00 to 02:53:00 UTC
    beside = runs_beside(tmp_path, *window)
    assert [b["job"] for b in beside] == ["predict"]
    report([{**run("10m", [300.0] * 40), "runs_beside": beside}])
    assert "WARNING: Dagster ran predict beside the worker (02:45:00-02:52:59 UTC)" in (
        capsys.readouterr().out
    )
