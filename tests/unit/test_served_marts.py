"""Which marts are published, and how, is each mart's YAML (``meta: publish:``): a mart that
does not say, or says it wrong, stops with an error that names its file and the fix."""

from __future__ import annotations

import pytest

from lakepulse.warehouse.publish import ServedMart, ServingConfigError, served_marts_of


def manifest(*nodes: dict) -> dict:
    return {"nodes": {f"model.lakepulse.{n['name']}": n for n in nodes}}


def model(name: str, meta: dict, folder: str = "marts", columns=("tenant_id", "day", "user_key")):
    return {
        "name": name,
        "resource_type": "model",
        "fqn": ["lakepulse", folder, name],
        "original_file_path": f"models/{folder}/{name}.sql",
        "patch_path": f"lakepulse://models/{folder}/{name}.yml",
        "config": {"meta": meta},
        "columns": {column: {"name": column} for column in columns},
    }


def test_published_and_unpublished_marts_are_read_from_meta():
    served = served_marts_of(
        manifest(
            model(
                "mart_users",
                {
                    "tier": "session",
                    "publish": {
                        "index": ["tenant_id", "day"],
                        "delta_key": ["tenant_id", "user_key"],
                        "customer_level": True,
                    },
                },
            ),
            model("mart_days", {"publish": {"index": ["tenant_id"], "customer_level": False}}),
            model("mart_internal", {"publish": False}),
            model("int_sessions", {}, folder="intermediate"),
        )
    )
    assert served == {
        "mart_users": ServedMart(
            "mart_users", ("tenant_id", "day"), ("tenant_id", "user_key"), customer_level=True
        ),
        "mart_days": ServedMart("mart_days", ("tenant_id",), None, customer_level=False),
    }


def test_a_mart_without_its_publish_key_names_its_yaml():
    with pytest.raises(ServingConfigError) as error:
        served_marts_of(manifest(model("mart_new", {"tier": "daily"})))
    assert str(error.value).startswith(
        "dbt_project/models/marts/mart_new.yml: model mart_new: config.meta.publish is missing"
    )


def test_a_delta_key_naming_an_unknown_column_is_refused():
    spec = {
        "index": ["tenant_id"],
        "delta_key": ["tenant_id", "session_id"],
        "customer_level": True,
    }
    with pytest.raises(ServingConfigError) as error:
        served_marts_of(manifest(model("fct_visits", {"publish": spec})))
    assert "config.meta.publish.delta_key names ['session_id']" in str(error.value)
    assert "dbt_project/models/marts/fct_visits.yml" in str(error.value)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"index": ["tenant_id"]}, "customer_level must be true or false"),
        ({"index": ["tenant_id"], "customer_level": "yes"}, "customer_level must be true or false"),
        ({"customer_level": False}, "index is missing"),
        ({"index": "tenant_id", "customer_level": False}, "index must be a list of column names"),
        ({"index": ["tenant_id"], "customer_level": False, "delta": ["x"]}, "unknown keys"),
        (True, "must be `false` or a mapping"),
    ],
)
def test_each_wrong_publish_spec_says_what_is_wrong(spec, says):
    with pytest.raises(ServingConfigError, match=says):
        served_marts_of(manifest(model("mart_x", {"publish": spec})))


def test_every_wrong_mart_is_listed_at_once():
    with pytest.raises(ServingConfigError) as error:
        served_marts_of(manifest(model("mart_a", {}), model("mart_b", {})))
    assert len(str(error.value).splitlines()) == 2
