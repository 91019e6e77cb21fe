"""The per-tenant copy of bi/superset: its own connection (the tenant's login), UUIDs and
names that never collide with another tenant's, and nothing left pointing at the shared one."""

import io
import zipfile

import yaml

from lakepulse.operations.bi import DASHBOARDS_DIR, superset_database_uri, tenant_bundle


def bundle_docs(tenant: str, pg_url: str) -> tuple[dict[str, dict], str]:
    raw, database_uuid = tenant_bundle(tenant, f"bi_{tenant}", "s3cr/t", pg_url)
    with zipfile.ZipFile(io.BytesIO(raw)) as bundle:
        return {
            name.split("/", 1)[1]: yaml.safe_load(bundle.read(name)) for name in bundle.namelist()
        }, database_uuid


def uuids(docs: dict[str, dict]) -> set[str]:
    return {doc["uuid"] for doc in docs.values() if "uuid" in doc}


def test_each_tenant_gets_its_own_connection_and_objects():
    acme, acme_db = bundle_docs("acme", "postgresql://postgres@db.internal:6432/serving")
    globex, _ = bundle_docs("globex", "postgresql://postgres@db.internal:6432/serving")
    originals = {
        yaml.safe_load(path.read_text()).get("uuid") for path in DASHBOARDS_DIR.rglob("*.yaml")
    } - {None}
    assert uuids(acme).isdisjoint(uuids(globex)) and uuids(acme).isdisjoint(originals)
    assert len(uuids(acme)) == len(originals)
    database = acme["databases/lakepulse.yaml"]
    assert database["uuid"] == acme_db
    assert database["sqlalchemy_uri"] == (
        "postgresql+psycopg2://bi_acme:s3cr%2Ft@db.internal:6432/serving"
    )
    for name, doc in acme.items():
        if name.startswith("datasets/"):
            assert doc["database_uuid"] == acme_db
            assert doc["table_name"].endswith("__acme") and "from marts." in doc["sql"]
        if name.startswith("charts/"):
            assert doc["dataset_uuid"] in uuids(acme) and doc["slice_name"].endswith("· acme")
        if name.startswith("dashboards/"):
            assert doc["slug"].endswith("-acme")
            charts = [
                v["meta"]["uuid"]
                for v in doc["position"].values()
                if "meta" in v and "uuid" in v.get("meta", {})
            ]
            assert charts and set(charts) <= uuids(acme)


def test_database_uri_follows_the_serving_urls_transport():
    assert superset_database_uri(
        "postgresql://postgres@/postgres?host=/data/pg&port=5433", "bi_acme", "p@ss"
    ) == ("postgresql+psycopg2://bi_acme:p%40ss@/postgres?host=/data/pg&port=5433")
    assert superset_database_uri("postgresql://postgres:@/postgres?host=/tmp/x", "r", "p") == (
        "postgresql+psycopg2://r:p@/postgres?host=/tmp/x&port=5432"
    )
