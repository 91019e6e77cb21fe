"""Configuration from the environment, and no machine-specific paths in the repository."""

import subprocess
from pathlib import Path

from lakepulse.core.settings import PROJECT_ROOT, Settings


def test_defaults_live_under_project_dot_lakepulse():
    settings = Settings.from_env({})
    assert settings.home == PROJECT_ROOT / ".lakepulse"
    assert settings.collector_port == 8088
    assert settings.dagster_home == settings.home / "dagster"
    assert settings.pg_url is None


def test_everything_derives_from_lakepulse_home(tmp_path: Path):
    settings = Settings.from_env(
        {"LAKEPULSE_HOME": str(tmp_path), "LAKEPULSE_COLLECTOR_PORT": "9999"}
    )
    for path in (
        settings.landing_dir,
        settings.lake_dir,
        settings.warehouse_path,
        settings.dagster_home,
    ):
        assert tmp_path in path.parents
    assert settings.collector_url.endswith(":9999")
    env = settings.process_env()
    assert env["LAKEPULSE_HOME"] == str(tmp_path) and env["DAGSTER_HOME"] == str(
        tmp_path / "dagster"
    )
    assert env["DO_NOT_TRACK"] == "1"


def test_dagster_home_can_be_set_separately(tmp_path: Path):
    settings = Settings.from_env(
        {"LAKEPULSE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "d")}
    )
    assert settings.dagster_home == tmp_path / "d"


def test_no_absolute_machine_paths_in_tracked_files():
    files = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in files:
        path = PROJECT_ROOT / name
        if path.suffix in {".lock", ".png"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        for needle in ("/work/", "/root/", "/home/", "/Users/"):
            if needle in text and name != "tests/unit/test_config.py":
                offenders.append(f"{name}: {needle}")
    assert offenders == []
