"""The minute's dbt build leaves out what would only repeat itself: the seeds while unchanged,
and the upstream tests between their runs every UPSTREAM_TESTS_EVERY_S."""

import time

from lakepulse.core.settings import Settings
from lakepulse.warehouse.dbt import (
    UPSTREAM_TESTS_EVERY_S,
    UPSTREAM_TESTS_TAG,
    build_args,
    excluded_by,
    remember_build,
)

UPSTREAM = f"tag:{UPSTREAM_TESTS_TAG}"


def settings_with_warehouse(tmp_path) -> Settings:
    settings = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path)})
    settings.ensure_dirs()
    settings.warehouse_path.write_bytes(b"")  # a built warehouse
    return settings


def test_a_first_build_runs_everything(tmp_path):
    settings = settings_with_warehouse(tmp_path)
    assert excluded_by(build_args(settings=settings)) == []


def test_after_a_full_build_seeds_and_upstream_tests_are_left_out(tmp_path):
    settings = settings_with_warehouse(tmp_path)
    remember_build(settings, build_args(settings=settings))
    assert set(excluded_by(build_args(settings=settings))) == {"resource_type:seed", UPSTREAM}


def test_upstream_tests_come_back_every_interval_and_are_remembered(tmp_path):
    settings = settings_with_warehouse(tmp_path)
    remember_build(settings, build_args(settings=settings))
    minute = build_args(settings=settings)
    remember_build(settings, minute)  # a build without them does not restart the interval
    ran_at = time.time() - UPSTREAM_TESTS_EVERY_S - 1
    settings.upstream_tests_marker_path.write_text(f"{ran_at}\n")
    due = build_args(settings=settings)
    assert excluded_by(due) == ["resource_type:seed"]
    remember_build(settings, minute)
    assert excluded_by(build_args(settings=settings)) == ["resource_type:seed"]
    remember_build(settings, due)
    assert UPSTREAM in excluded_by(build_args(settings=settings))


def test_a_full_refresh_runs_every_test(tmp_path):
    settings = settings_with_warehouse(tmp_path)
    remember_build(settings, build_args(settings=settings))
    assert excluded_by(build_args(full_refresh=True, settings=settings)) == []
