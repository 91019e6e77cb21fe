"""Running dbt against one data directory, with the project's profile: the command line, the
pipeline's build arguments, and the seeds fingerprint. No side effects beyond dbt's own: what
happens around a build (alerts table, replica, publish) is :mod:`lakepulse.operations.rebuild`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from lakepulse.core.settings import DBT_PROJECT_DIR, Settings


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
    return 0 <= time.time() - ran_at < UPSTREAM_TESTS_EVERY_S


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
