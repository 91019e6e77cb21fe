"""The table properties that keep the Delta tables scanned every cycle small to read
(:mod:`lakepulse.core.delta_tables`)."""

import shutil

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakepulse.core import delta_tables
from lakepulse.core.delta_tables import ensure_upkeep_properties
from lakepulse.warehouse.trigger_tables import (
    configure_deliveries_table,
    configure_firing_tables,
    ensure_trigger_tables,
    firings_written_path,
)


def _properties(path) -> dict[str, str]:
    return DeltaTable(str(path)).metadata().configuration


def test_a_table_made_before_gets_the_properties_once(tmp_path, monkeypatch):
    monkeypatch.setattr(delta_tables, "_configured", set())
    path = tmp_path / "t"
    assert not ensure_upkeep_properties(path, ("at",))  # no table yet
    write_deltalake(str(path), pa.table({"id": ["a"], "at": [1]}))
    assert _properties(path) == {}
    assert ensure_upkeep_properties(path, ("at",))
    assert _properties(path) == {
        "delta.checkpointInterval": "10",
        "delta.dataSkippingStatsColumns": "at",
    }
    version = DeltaTable(str(path)).version()
    monkeypatch.setattr(delta_tables, "_configured", set())  # another process
    assert ensure_upkeep_properties(path, ("at",))
    assert DeltaTable(str(path)).version() == version  # found set: no commit


def test_trigger_tables_are_made_with_them_and_older_ones_get_them(settings, monkeypatch):
    monkeypatch.setattr(delta_tables, "_configured", set())
    ensure_trigger_tables(settings)
    assert _properties(settings.trigger_firings_path)["delta.dataSkippingStatsColumns"] == (
        "fired_at"
    )
    assert _properties(settings.trigger_deliveries_path)["delta.checkpointInterval"] == "10"
    # tables made before the properties were set at creation
    for path in (
        settings.trigger_firings_path,
        firings_written_path(settings),
        settings.trigger_deliveries_path,
    ):
        schema = pa.schema(DeltaTable(str(path)).schema().to_arrow())
        shutil.rmtree(path)
        write_deltalake(str(path), schema.empty_table())
        assert _properties(path) == {}
    configure_firing_tables(settings)
    configure_deliveries_table(settings)
    assert _properties(firings_written_path(settings))["delta.dataSkippingStatsColumns"] == (
        "written_at"
    )
    assert _properties(settings.trigger_deliveries_path)["delta.dataSkippingStatsColumns"] == (
        "recorded_at"
    )
