"""The marts' YAML ``meta: publish:`` (issue #28) serves exactly what the publish module's
constants served before: the same marts, indexes, delta keys and customer-level set."""

from __future__ import annotations

import json

import pytest

from lakepulse.warehouse.publish import served_marts_of
from tests.served import CUSTOMER_LEVEL_MARTS, DELTA_KEYS, MARTS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from lakepulse.core.settings import Settings
    from lakepulse.warehouse.dbt import run_dbt

    settings = Settings.from_env({"LAKEPULSE_HOME": str(tmp_path_factory.mktemp("served"))})
    run_dbt(settings, "parse", "--quiet", capture=True)
    return served_marts_of(json.loads(settings.dbt_manifest_path.read_text()))


def test_the_published_set_and_indexes_are_todays(served):
    assert {name: mart.index for name, mart in served.items()} == MARTS


def test_the_delta_keys_are_todays(served):
    assert {name: mart.delta_key for name, mart in served.items() if mart.delta_key} == DELTA_KEYS


def test_the_customer_level_marts_are_todays(served):
    assert {name for name, mart in served.items() if mart.customer_level} == CUSTOMER_LEVEL_MARTS
