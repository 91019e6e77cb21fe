"""Running dbt against one data directory, with the project's profile: the command line, the
pipeline's build arguments, and the seeds fingerprint. No side effects beyond dbt's own: what
happens around a build (alerts table, replica, publish) is :mod:`lakepulse.operations.rebuild`."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lakepulse.core.settings import DBT_PROJECT_DIR, TELEMETRY_OFF, Settings
from lakepulse.warehouse.dbt_schedule import remember_node_seconds, schedule_longest_path_first


def dbt_executable() -> str:
    return str(Path(sys.executable).with_name("dbt"))


def dbt_command(settings: Settings, *args: str) -> list[str]:
    return [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(settings.dbt_target_dir),
    ]


def run_dbt(settings: Settings, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run a dbt command against this data directory; raises ``CalledProcessError`` on
    failure."""
    settings.ensure_dirs()
    return subprocess.run(
        dbt_command(settings, *args),
        env=settings.process_env(),
        cwd=DBT_PROJECT_DIR,
        check=True,
        text=True,
        capture_output=capture,
    )


def dbt_arguments(settings: Settings, *args: str) -> list[str]:
    """dbt's arguments for this data directory: the project, its profile, its target."""
    return dbt_command(settings, *args)[1:]


class DbtFailed(RuntimeError):
    """An in-process dbt invocation failed; the message names the failing nodes."""


def skip_unlogged_events() -> None:
    """Make this process's dbt skip the events none of its loggers would write.

    dbt builds a message for every event it fires (a protobuf message, its text, a timestamp)
    and hands it to each logger, which formats the line before its level discards it. A
    worker's build fires a debug event for every statement, the SQL included, and logs at
    ``info``: in session 25's in-process cycles at ten million events, 15,141 debug events took
    12 s of dbt's time in the event manager, for no line written. Idempotent; the manager it
    installs keeps dbt's own, ``setup_event_logger`` filling its loggers at each invocation."""
    from dbt_common.events import event_manager_client

    logged_events_only = _logged_events_only_class()
    if not isinstance(event_manager_client.get_event_manager(), logged_events_only):
        event_manager_client.ctx_set_event_manager(logged_events_only())
    _build_debug_events_when_read()
    _name_behaviour_flag_sources_from_frames()


@functools.cache
def _name_behaviour_flag_sources_from_frames() -> None:
    """dbt names the module that declared each behaviour flag (for the warning the flag may
    give) when an invocation starts its adapter, twice an invocation, by walking
    ``inspect.stack()``: that reads the source lines of every frame on the stack and looks each
    file up among all loaded modules. In the worker, under Dagster's op and dbt's own frames, it
    took 2.3 % of the in-process worker's time in ``test_worker.py`` (py-spy, session 28). The
    first module outside dbt's ``behavior_flags`` is read from the frames' globals instead: the
    same name, without a file read."""
    import sys

    from dbt_common import behavior_flags

    def default_source() -> str:
        frame = sys._getframe(1)
        while frame is not None:
            module = frame.f_globals.get("__name__")
            if module and module != behavior_flags.__name__:
                return module
            frame = frame.f_back
        return "Unknown"

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(default_source)


@functools.cache
def _build_debug_events_when_read() -> None:
    """A debug-level event made while the manager of :func:`skip_unlogged_events` writes no
    debug line is built (its protobuf message parsed from its fields) only when something
    reads it. Skipping the event in the manager still left its construction at the call site:
    6.2 s for 16,273 events in session 25's cycles at ten million events, and 2.5 % of a
    benchmark worker's time (py-spy, session 26). An event read later (a field, its message,
    an attribute set) is built then, from the fields it was made with, so nothing that uses it
    sees a difference. Events whose level the caller chooses (``DynamicLevel``) are always
    built: their level is not known when they are made."""
    from dbt_common.events import event_manager_client
    from dbt_common.events.base_types import BaseEvent, DebugLevel, EventLevel
    from dbt_common.events.logger import _log_level_map

    logged_events_only = _logged_events_only_class()
    build, read, write = BaseEvent.__init__, BaseEvent.__getattr__, BaseEvent.__setattr__
    debug = _log_level_map[EventLevel.DEBUG]

    def unlogged() -> bool:
        manager = event_manager_client.get_event_manager()
        return (
            isinstance(manager, logged_events_only)
            and bool(manager.loggers)
            and all(debug < _log_level_map[logger.level] for logger in manager.loggers)
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(self, DebugLevel) and unlogged():
            object.__setattr__(self, "_unbuilt", (args, kwargs))
        else:
            build(self, *args, **kwargs)

    def built(self) -> None:
        unbuilt = self.__dict__.pop("_unbuilt", None)
        if unbuilt is not None:
            build(self, *unbuilt[0], **unbuilt[1])

    def __getattr__(self, key: str) -> Any:
        built(self)
        return read(self, key)

    def __setattr__(self, key: str, value: Any) -> None:
        built(self)
        write(self, key, value)

    BaseEvent.__init__ = __init__
    BaseEvent.__getattr__ = __getattr__
    BaseEvent.__setattr__ = __setattr__


@functools.cache
def _logged_events_only_class() -> type:
    """The event manager of :func:`skip_unlogged_events` (a class made on first use: dbt is
    imported only by what runs it)."""
    from dbt_common.events.base_types import EventLevel
    from dbt_common.events.event_manager import EventManager
    from dbt_common.events.logger import PRINT_EVENT_NAMES, _log_level_map

    class LoggedEventsOnly(EventManager):
        """dbt's event manager, returning at once for an event below every logger's level.

        It keeps every event a logger writes, every warning and error (dbt's warn-error
        handling sees them), and every print event (sent to the console at any level). dbt's
        own callback reads behaviour-change warnings only; the worker registers none."""

        def fire_event(
            self,
            e: Any,
            level: Any = None,
            node: Any = None,
            force_warn_or_error_handling: bool = False,
        ) -> None:
            rank = _log_level_map[EventLevel(level or e.level_tag())]
            if (
                not force_warn_or_error_handling
                and rank < _log_level_map[EventLevel.WARN]
                and type(e).__name__ not in PRINT_EVENT_NAMES
                and self.loggers
                and all(rank < _log_level_map[logger.level] for logger in self.loggers)
            ):
                return
            super().fire_event(e, level, node, force_warn_or_error_handling)

    return LoggedEventsOnly


class WarmDbt:
    """dbt inside this process, for the long-lived pipeline worker: dbt is imported once and
    the project parsed once, its manifest kept between invocations and parsed again only when
    a project file changes. Each invocation of a run-per-minute design paid ~3 s of imports,
    ~2 s of partial parse and ~1 s of adapter start before its first model.

    dbt allows one invocation at a time per process, so a worker serialises them. dbt's
    profile reads ``LAKEPULSE_HOME`` from the process's environment, which this sets (with
    telemetry off): make one per worker process, for one data directory.

    With ``keep_open`` the warehouse stays open after an invocation (:meth:`warehouse`), until
    :meth:`close_warehouse`: DuckDB then keeps what the last build read in its buffers, where a
    database opened anew for each invocation read it all again, and checkpointed at every close
    (at ten million events, ~40 % of a live build's time). The owner closes it before anything
    else, in this process or another, opens the file."""

    def __init__(self, settings: Settings, keep_open: bool = False) -> None:
        from dbt.cli.main import dbtRunner

        self.settings = settings
        self.keep_open = keep_open
        os.environ.update(TELEMETRY_OFF | {"LAKEPULSE_HOME": str(settings.home)})
        settings.ensure_dirs()
        skip_unlogged_events()
        schedule_longest_path_first()
        self._runner_class = dbtRunner
        self._manifest: Any = None
        self._parsed_at = 0.0

    def _manifest_now(self) -> Any:
        manifest_file = self.settings.dbt_manifest_path
        stale = self._manifest is None or any(
            p.stat().st_mtime > self._parsed_at for p in project_files()
        )
        if stale:
            self._parsed_at = time.time()
            result = self._runner_class().invoke(dbt_arguments(self.settings, "parse", "--quiet"))
            if not result.success:
                raise DbtFailed(f"dbt parse failed: {result.exception}")
            self._manifest = result.result
            assert manifest_file.exists()
        return self._manifest

    def manifest_path(self) -> Path:
        """The manifest's file, as the project is now (parsed first if it changed)."""
        self._manifest_now()
        return self.settings.dbt_manifest_path

    def invoke(self, *args: str) -> Any:
        """Run one dbt command (``build --select ...``); returns dbt's result, raises
        :class:`DbtFailed` naming the nodes that failed.

        It writes no JSON artifacts: dbt would write the whole manifest again after every
        command (a third of a live tier's build at ten million events), though only a parse
        changes it, and the parse that keeps it (:meth:`manifest_path`) writes it; the result
        returned holds what ``run_results.json`` would.

        Its log file is the data directory's ``logs/dbt.log``, at ``info``: a line as each
        node starts and ends, and every warning and error. dbt's default, ``debug``, wrote each
        statement and cache event, ~5 % of the worker's CPU at a build every few seconds, into
        the project's folder."""
        runner = self._runner_class(manifest=self._manifest_now())
        try:
            result = runner.invoke(
                dbt_arguments(
                    self.settings,
                    *args,
                    "--quiet",
                    "--no-write-json",
                    "--log-path",
                    str(self.settings.logs_dir),
                    "--log-level-file",
                    "info",
                )
            )
        except BaseException:
            _close_warehouse()
            raise
        if not self.keep_open or not result.success:
            _close_warehouse()  # a failed build's database is opened afresh
        remember_node_seconds(getattr(result.result, "results", None) or [])
        if not result.success:
            failed = [
                f"{r.node.name}: {(r.message or '').strip()[:300]}"
                for r in getattr(result.result, "results", None) or []
                if str(r.status) in {"error", "fail", "runtime error"}
            ]
            raise DbtFailed(
                f"dbt {args[0]} failed: " + ("; ".join(failed) or str(result.exception))
            )
        return result.result

    def warehouse(self) -> Any | None:
        """The warehouse's DuckDB connection that dbt left open (``keep_open``), or None: a
        cursor of it reads and writes the warehouse in this process."""
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        environment = DuckDBConnectionManager._ENV
        return getattr(environment, "conn", None) if self.keep_open else None

    def close_warehouse(self) -> None:
        """Close (and so checkpoint) the warehouse dbt left open, if it did."""
        _close_warehouse()


def _close_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation
    (the adapter's environment outlives it), so the worker's publish and checks, and other
    processes between two cycles, can open the warehouse file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    try:
        environment = DuckDBConnectionManager.env()
    except Exception:  # none was opened
        return
    environment.close()
    DuckDBConnectionManager.close_all_connections()


UPSTREAM_TESTS_TAG = "upstream"
"""Tag of the dbt tests on staging and intermediate models and on the sources
(``dbt_project.yml``): they check dbt's working state, not what BI reads."""

UPSTREAM_TESTS_EVERY_S = 600
"""How often the minute's build includes the upstream tests."""


def build_args(full_refresh: bool = False, settings: Settings | None = None) -> list[str]:
    """The pipeline's dbt build: every model, seed and data test. Unit tests check model logic
    on fixed inputs, not the data: they run in development and CI (`dbt build`, `dbt test
    --select test_type:unit`), not every minute. ``full_refresh`` rebuilds the incremental
    models from bronze (the experiment snapshot history is kept).

    With ``settings`` (the minute's build), two kinds of nodes are left out while they would
    only repeat themselves, each of them costing dbt ~0.1 s a node however small the data:

    - the seeds (funnel, experiment and channel definitions, changed by hand, rarely) and
      their tests, while they are as this warehouse last built them (:func:`remember_build`);
    - the upstream tests (:data:`UPSTREAM_TESTS_TAG`), but every
      :data:`UPSTREAM_TESTS_EVERY_S`: each minute, what BI reads is held by the blocking bronze
      suite before dbt, the contracts' constraints (DuckDB refuses a violating row), the marts'
      and trigger models' tests inside the build and the marts' suites before the publish."""
    args = ["build", "--exclude-resource-type", "unit_test"]
    if full_refresh:
        return [*args, "--full-refresh"]
    if settings is None:
        return args
    excluded = []
    if seeds_built(settings):
        excluded.append("resource_type:seed")
    if upstream_tests_ran_recently(settings):
        excluded.append(f"tag:{UPSTREAM_TESTS_TAG}")
    return [*args, "--exclude", " ".join(excluded)] if excluded else args


def tier_build_args(
    settings: Settings,
    select: str,
    upstream_tests: bool,
    leave_out: list[str] | None = None,
    wave: bool = False,
) -> list[str]:
    """The worker's build of one freshness tier (``select``, see
    :mod:`lakepulse.warehouse.tiers`): its models and their tests, the seeds too while they are
    not built as they are now, and the upstream tests (of every tier) only when
    ``upstream_tests`` (the slowest tier's turn: the faster ones never wait for them). The
    models named in ``leave_out`` are not built.

    A ``wave`` of a tier's turn (``select`` names its models) runs a test only once every model
    it reads is built or upstream (dbt's ``buildable`` selection): a test of a model and of one
    in a later wave runs in that wave, never against the later model's last turn."""
    selected, excluded = [select], list(leave_out or [])
    if seeds_built(settings):
        excluded.append("resource_type:seed")
    else:
        selected.append("resource_type:seed")
    if upstream_tests:
        selected.append(f"tag:{UPSTREAM_TESTS_TAG}")
    else:
        excluded.append(f"tag:{UPSTREAM_TESTS_TAG}")
    args = ["build", "--exclude-resource-type", "unit_test", "--select", " ".join(selected)]
    if wave:
        args += ["--indirect-selection", "buildable"]
    return [*args, "--exclude", " ".join(excluded)] if excluded else args


def excluded_by(args: list[str]) -> list[str]:
    """The selectors a build's ``--exclude`` named."""
    return args[args.index("--exclude") + 1].split() if "--exclude" in args else []


def upstream_tests_ran_recently(settings: Settings) -> bool:
    marker = settings.upstream_tests_marker_path
    if not (settings.warehouse_path.exists() and marker.exists()):
        return False
    try:
        ran_at = float(marker.read_text().strip())
    except ValueError:
        return False
    # The marker is written rounded to the millisecond, so a build right after it can find it
    # a fraction of a second ahead: that is recent too (a marker far ahead, from a clock set
    # back, is not).
    return -1.0 <= time.time() - ran_at < UPSTREAM_TESTS_EVERY_S


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            name = str(path.relative_to(DBT_PROJECT_DIR)).encode()
            digest.update(name + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def seeds_fingerprint() -> str:
    """A hash of everything that decides the seed tables: the CSVs, their YAML and the
    project file (column types, schema)."""
    seeds = DBT_PROJECT_DIR / "seeds"
    return _fingerprint([*sorted(seeds.iterdir()), DBT_PROJECT_DIR / "dbt_project.yml"])


PROJECT_SUFFIXES = {".sql", ".py", ".yml", ".yaml", ".csv", ".md"}


def project_files() -> list[Path]:
    """The files dbt parses (models, macros, seeds, YAML, docs), not its artifacts."""
    return sorted(
        p
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in PROJECT_SUFFIXES and "target" not in p.parts and "logs" not in p.parts
    )


def project_fingerprint() -> str:
    """A hash of every file dbt parses: it changes when a release or an analyst changes the
    project, and only then."""
    return _fingerprint(project_files())


def manifest_is_stale(manifest: Path) -> bool:
    """Whether a project file changed since ``manifest`` was written (or there is none)."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in project_files())


def ensure_manifest(settings: Settings) -> Path:
    """This data directory's manifest, parsed again only when a project file changed (a parse
    costs seconds of a minute's budget)."""
    manifest = settings.dbt_manifest_path
    if manifest_is_stale(manifest):
        run_dbt(settings, "parse", "--quiet", capture=True)
    return manifest


def parsed_manifest(settings: Settings) -> dict[str, Any]:
    """The project's manifest as a mapping, leaving nothing behind: this data directory's
    manifest when it is fresh, else a parse by dbt in a process of its own, whose artifacts go
    to a temporary directory removed at once (dbt-core 1.11 writes ``partial_parse.msgpack``
    after every full parse and ``perf_info.json`` after every ``parse`` whatever the flags, so
    "no write" is not on offer; nothing lands in the data directory or the project). For
    loading Dagster definitions, which every Dagster process does and which must have no side
    effects (issue #28): the manifest on disk is written by the builds (:func:`ensure_manifest`,
    :class:`WarmDbt`). Not in this process: dbt-duckdb's adapter imports DuckDB and a parse
    leaves dbt's objects behind, in the code server that holds the definitions for as long as
    the platform runs (``tests/integration/test_definitions_load.py``)."""
    import json
    import tempfile

    manifest = settings.dbt_manifest_path
    if not manifest_is_stale(manifest):
        return json.loads(manifest.read_text())
    with tempfile.TemporaryDirectory(prefix="lakepulse-parse-") as scratch:
        # dbt's profile and sources read LAKEPULSE_HOME from the environment.
        parse = subprocess.run(
            [
                dbt_executable(),
                "parse",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                scratch,
                "--log-path",
                scratch,
                "--no-partial-parse",
                "--log-level-file",
                "none",
                "--quiet",
            ],
            env=os.environ | TELEMETRY_OFF | {"LAKEPULSE_HOME": str(settings.home)},
            cwd=scratch,
            capture_output=True,
            text=True,
        )
        if parse.returncode != 0:
            raise DbtFailed(f"dbt parse failed: {(parse.stdout + parse.stderr).strip()[-2000:]}")
        return json.loads((Path(scratch) / "manifest.json").read_text())


def seeds_built(settings: Settings) -> bool:
    """Whether the warehouse's seed tables were built from the seeds as they are now."""
    marker = settings.seeds_marker_path
    return (
        settings.warehouse_path.exists()
        and marker.exists()
        and marker.read_text().strip() == seeds_fingerprint()
    )


def remember_build(settings: Settings, args: list[str]) -> None:
    """After a build with ``args`` succeeded: if it built the seeds, record their fingerprint,
    so the next builds can leave them out until they change; if it ran the upstream tests,
    when."""
    excluded = excluded_by(args)
    if "resource_type:seed" not in excluded:
        settings.seeds_marker_path.write_text(seeds_fingerprint() + "\n")
    if f"tag:{UPSTREAM_TESTS_TAG}" not in excluded:
        settings.upstream_tests_marker_path.write_text(f"{time.time():.3f}\n")
