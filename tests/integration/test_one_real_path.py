"""The one real path, end to end without the UI:

simulator -> collector (HTTP POST /v1/batch) -> landing log -> dlt -> Delta raw.events
-> dbt-duckdb (stg_events, mart_event_volume) -> Dagster sensor + job,
with exact counts at every layer.
"""

import base64

import dagster as dg
import httpx
import pytest
from deltalake import DeltaTable

from lakepulse.demo.simulator import Sender, SimConfig, TrafficGenerator, run
from orchestration.definitions import build_definitions

pytestmark = pytest.mark.integration

N_EVENTS = 600


def send_one_bad_event(url: str, key: str) -> None:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    bad = {"type": "track", "anonymousId": "x", "messageId": "bad-1"}  # no event name
    response = httpx.post(f"{url}/v1/batch", json={"batch": [bad]}, headers={"Authorization": auth})
    assert response.json()["rejected"][0]["messageId"] == "bad-1"


def test_events_flow_through_every_layer_with_exact_counts(
    settings, workspace, tenant, second_tenant, collector
):
    keys = {tenant.tenant_id: tenant.write_key, second_tenant.tenant_id: second_tenant.write_key}
    generator = TrafficGenerator(SimConfig(seed=7, tenants=keys))
    sender = Sender(collector)
    accepted = run(generator, sender, rate=100_000, total=N_EVENTS, batch_size=40)
    sender.close()
    assert accepted == N_EVENTS
    send_one_bad_event(collector, tenant.write_key)

    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_log_sensor")
    job = defs.resolve_job_def("ingest_and_build")
    with dg.instance_for_test() as instance:
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert len(tick.run_requests) == 1, tick.skip_message
        assert job.execute_in_process(instance=instance).success

        # Bronze: every accepted event exactly once, the bad one quarantined with its reason.
        bronze = DeltaTable(str(settings.bronze_events_path)).to_pyarrow_table()
        assert bronze.num_rows == N_EVENTS
        assert (
            len(
                set(
                    zip(
                        bronze["tenant_id"].to_pylist(),
                        bronze["message_id"].to_pylist(),
                        strict=True,
                    )
                )
            )
            == N_EVENTS
        )
        rejected = DeltaTable(str(settings.bronze_rejected_path)).to_pyarrow_table()
        assert rejected["message_id"].to_pylist() == ["bad-1"]
        assert "required for track calls" in rejected["reason"][0].as_py()

        # Marts: totals reconcile with bronze per tenant.
        from lakepulse.warehouse.replica import explorer

        conn, _ = explorer(settings)
        per_tenant_bronze = dict(
            conn.sql("select tenant_id, count(*) from raw.events group by 1").fetchall()
        )
        per_tenant_mart = dict(
            conn.sql(
                "select tenant_id, sum(events)::bigint from marts.mart_event_volume group by 1"
            ).fetchall()
        )
        [(stg,)] = workspace.warehouse_sql("select count(*) from staging.stg_events")
        orders = conn.sql(
            "select count(*) from raw.events where event = 'Order Completed'"
        ).fetchone()[0]
        mart_orders = conn.sql("select sum(orders) from marts.mart_event_volume").fetchone()[0]
        conn.close()
        assert per_tenant_mart == per_tenant_bronze
        assert sum(per_tenant_mart.values()) == stg == N_EVENTS
        assert mart_orders == orders > 0

        # Dagster recorded materializations for every layer.
        for key in (["raw", "events"], ["stg_events"], ["mart_event_volume"]):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key

        # The triggers fired after the marts (one asset per trigger, counts as metadata) and
        # wrote one Trigger Fired event per firing back to the landing log.
        fired = DeltaTable(str(settings.trigger_firings_path)).count()
        assert fired > 0
        totals = 0
        for name in ("welcome_letter", "why_did_you_leave", "cart_reminder"):
            event = instance.get_latest_materialization_event(dg.AssetKey(["triggers", name]))
            assert event is not None, name
            totals += event.asset_materialization.metadata["firings_total"].value
        check = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey(["triggers", "triggers_yml"]), "triggers_yml_valid")
        )
        assert check is not None and check.event.dagster_event.event_specific_data.passed
        assert totals <= fired

        # Only the firings' events are new: the sensor starts one more run, which loads them
        # (once each) and fires nothing twice; after it the sensor skips.
        tick2 = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs)
        )
        assert len(tick2.run_requests) == 1
        assert job.execute_in_process(instance=instance).success
        assert DeltaTable(str(settings.bronze_events_path)).count() == N_EVENTS + fired
        assert DeltaTable(str(settings.trigger_firings_path)).count() == fired
        tick3 = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=tick2.cursor, definitions=defs)
        )
        assert not tick3.run_requests and "no new landing files" in tick3.skip_message
        assert job.execute_in_process(instance=instance).success
        assert DeltaTable(str(settings.bronze_events_path)).count() == N_EVENTS + fired


def test_same_landing_file_offered_twice_lands_once(settings, tenant, workspace, collector):
    auth = "Basic " + base64.b64encode(f"{tenant.write_key}:".encode()).decode()
    batch = [
        {"type": "track", "event": "Product Viewed", "anonymousId": "a", "messageId": f"m{i}"}
        for i in range(5)
    ]
    for _ in range(2):  # an SDK retry after a lost response
        assert (
            httpx.post(
                f"{collector}/v1/batch", json={"batch": batch}, headers={"Authorization": auth}
            ).status_code
            == 200
        )
    workspace.ingest()
    state_dir = settings.dlt_pipelines_dir
    assert state_dir.exists()
    # Forget the cursor, as if a load died before committing its state: files are read again.
    import shutil

    shutil.rmtree(state_dir)
    workspace.ingest()
    assert workspace.bronze().num_rows == 5


def test_blocking_bronze_check_stops_marts_on_a_bad_load(settings, tenant, workspace, collector):
    """A row that breaks the bronze contract (written around the collector) fails the
    great-expectations check, and the marts are not rebuilt on top of it."""
    import pyarrow as pa
    from deltalake import write_deltalake

    auth = "Basic " + base64.b64encode(f"{tenant.write_key}:".encode()).decode()
    good = [{"type": "track", "event": "Product Viewed", "anonymousId": "a", "messageId": "ok-1"}]
    httpx.post(f"{collector}/v1/batch", json={"batch": good}, headers={"Authorization": auth})
    defs = build_definitions(settings)
    job = defs.resolve_job_def("ingest_and_build")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success
        first_mart = instance.get_latest_materialization_event(dg.AssetKey(["mart_event_volume"]))

        bronze = workspace.bronze()
        bad = bronze.slice(0, 1).to_pylist()[0] | {
            "tenant_id": "intruder",
            "message_id": "x-1",
            "revenue": -5.0,
        }
        bad["loaded_at"] = bad["loaded_at"].replace(year=bad["loaded_at"].year + 1)
        write_deltalake(
            str(settings.bronze_events_path),
            pa.Table.from_pylist([bad], schema=bronze.schema),
            mode="append",
        )
        # Only the check and the models: the loader has nothing new to add.
        check_job = dg.define_asset_job(
            "check_then_build",
            selection=dg.AssetSelection.checks_for_assets(dg.AssetKey(["raw", "events"]))
            | dg.AssetSelection.assets(dg.AssetKey(["raw", "events"])).downstream(
                include_self=False
            ),
        )
        result = (
            dg.Definitions.merge(defs, dg.Definitions(jobs=[check_job]))
            .resolve_job_def("check_then_build")
            .execute_in_process(instance=instance, raise_on_error=False)
        )
        assert not result.success
        evaluation = next(
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        assert not evaluation.passed
        failures = evaluation.metadata["failures"].value
        assert {f["column"] for f in failures} >= {"tenant_id", "revenue"}
        assert (
            instance.get_latest_materialization_event(dg.AssetKey(["mart_event_volume"])).run_id
            == first_mart.run_id
        )
