"""The pipeline worker's heartbeat (:attr:`Settings.worker_heartbeat_path`): its pid and the
time, rewritten every few seconds. Beside the worker, not in it: the Dagster sensor that keeps a
worker going reads it in the code server, which must not import the worker's workflows (pyarrow,
DuckDB, pandas) to evaluate a sensor."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from lakepulse.core.settings import Settings

HEARTBEAT_EVERY_S = 5.0


def beat(path: Path) -> None:
    """One heartbeat: this process's pid and the time, written beside the heartbeat and renamed
    over it, so a reader never finds it empty or half written. Written in place, a sensor that
    read it between the truncation and the write saw no heartbeat and failed a run whose worker
    was cycling (twice in the first five minutes of session 26's benchmark at ten million
    events), and the old worker went on beside the new one."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fresh.write_text(json.dumps({"pid": os.getpid(), "at": time.time()}))
    os.replace(fresh, path)


def worker_beating(settings: Settings, stale_after_s: float = 60.0) -> bool:
    """Whether a pipeline worker's heartbeat is fresh and its process alive (on this host)."""
    try:
        last = json.loads(settings.worker_heartbeat_path.read_text())
    except FileNotFoundError:
        return False
    except ValueError:  # written in place by a worker of an earlier release: read it again
        time.sleep(0.2)
        try:
            last = json.loads(settings.worker_heartbeat_path.read_text())
        except (FileNotFoundError, ValueError):
            return False
    if time.time() - float(last["at"]) > stale_after_s:
        return False
    try:
        os.kill(int(last["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
