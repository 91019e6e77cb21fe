"""One pipeline cycle in its own process, as the Dagster job runs it (load, build, replica,
publish, fire), for the fault-injection test: ``LAKEPULSE_FAULT_KILL_AT`` names a boundary
between two steps where this process SIGKILLs itself, a real crash at an exact point. dbt's
own output streams to stdout, so the test can kill the process group at a model boundary.

    python -m tests.integration.cycle_driver PG_URL
"""

from __future__ import annotations

import os
import signal
import sys

BOUNDARIES = ("loaded", "built", "replica", "published")
"""The cycle's boundaries, in order: after the load, after dbt's build (before the replica and
the seeds marker), after the replica (before the publish), after the publish (before firing)."""


def boundary(name: str) -> None:
    if os.environ.get("LAKEPULSE_FAULT_KILL_AT") == name:
        print(f"fault: killed at {name}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def main(pg_url: str) -> None:
    from ingestion.pipeline import run_ingest
    from lakepulse.core.settings import Settings
    from lakepulse.operations.rebuild import finish_build, prepare_build
    from lakepulse.triggers.firing import fire
    from lakepulse.warehouse.dbt import run_dbt
    from lakepulse.warehouse.publish import publish

    settings = Settings.from_env()
    run_ingest(settings)
    boundary("loaded")
    args = prepare_build(settings)
    run_dbt(settings, *args)
    boundary("built")
    finish_build(settings, args)
    boundary("replica")
    publish(settings, pg_url)
    boundary("published")
    fire(settings)
    print("cycle: done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
