"""Bronze layer: the dlt load from the landing log into Delta ``raw.events`` and
``raw.events_rejected``."""

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, AssetSpec
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt import Pipeline

from ingestion.pipeline import bronze_pipeline, bronze_source, prepared_bronze_pipeline
from lakepulse.core.settings import Settings

LANDING_LOG_KEY = AssetKey(["landing", "log"])
OWNER = "team:data-platform"

DESCRIPTIONS = {
    "events": "Accepted Segment events, unique on (tenant_id, message_id), partitioned by "
    "event_date. PII-free. Loaded by dlt from the landing log (Delta upsert).",
    "events_rejected": "Events that broke the contract, with the reason and the PII-scrubbed "
    "payload; nothing is dropped silently.",
}

landing_log_spec = AssetSpec(
    key=LANDING_LOG_KEY,
    description="Immutable micro-batch files written by the collector (fsync + rename before "
    "the 200 OK), partitioned by a hash of the tenant.",
    group_name="landing",
    kinds={"file"},
    owners=[OWNER],
)


class BronzeTranslator(DagsterDltTranslator):
    """Names dlt resources ``raw/<table>`` so they match the dbt sources downstream."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        name = data.resource.name
        return spec.replace_attributes(
            key=AssetKey(["raw", name]),
            deps=[LANDING_LOG_KEY],
            group_name="bronze",
            description=DESCRIPTIONS.get(name, spec.description),
            owners=[OWNER],
            kinds={"dlt", "delta"},
        )


def _spec_pipeline(settings: Settings, scratch: str) -> Pipeline:
    """The bronze pipeline as dagster-dlt reads it when the definitions load (its name and
    destination type, for the asset specs), with its working folder under ``scratch``: dlt
    makes that folder when a pipeline object is made, and loading the definitions must leave
    no trace. The runs use the real one (:func:`prepared_bronze_pipeline`)."""
    return bronze_pipeline(replace(settings, home=Path(scratch)))


def build_bronze_assets(settings: Settings) -> AssetsDefinition:
    with tempfile.TemporaryDirectory(prefix="lakepulse-specs-") as scratch:
        spec_pipeline = _spec_pipeline(settings, scratch)

    @dlt_assets(
        dlt_source=bronze_source(settings),
        dlt_pipeline=spec_pipeline,
        name="bronze_load",
        dagster_dlt_translator=BronzeTranslator(),
        op_tags={"lakepulse/stage": "ingest"},
    )
    def bronze_load(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator:
        with prepared_bronze_pipeline(settings) as pipeline:
            yield from dlt.run(
                context=context, dlt_source=bronze_source(settings), dlt_pipeline=pipeline
            )

    return bronze_load
