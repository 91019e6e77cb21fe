"""Provision Superset for lakepulse: runs inside Superset's virtualenv (``bi/.venv``), in one
Superset app context, reading a JSON plan on stdin that ``lakepulse bi`` writes. One process
instead of ``superset db upgrade``, ``fab create-admin``, ``init`` and ``import-dashboards``
(the same calls), because each Superset start costs 10-15 s here.

On a new metadata database (``initialize``) it migrates the schema, syncs the built-in roles'
permissions and creates the admin.

For each tenant it imports that tenant's copy of the dashboards (a bundle in Superset's export
format, already rewritten to the tenant's database connection): its datasets and charts, then
its dashboards, each replacing the copy a previous start imported. Then it makes a Superset role
``tenant_<name>`` holding ``database_access`` on that connection only, and a user in the roles
``Gamma`` + ``tenant_<name>``. Superset shows a Gamma user only dashboards whose datasets it can
access, so a tenant's user sees its own dashboards only; and the connection itself logs in as
the tenant's PostgreSQL BI login, so row-level security filters every query by tenant whatever
Superset does. Everything is an upsert: running it again changes nothing but passwords.

Imports nothing of lakepulse (different virtualenv); prints one JSON line with what it did.
"""

import json
import sys
import zipfile

import yaml


def main() -> None:
    plan = json.load(sys.stdin)
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from flask import g
        from superset import appbuilder, db, security_manager
        from superset.commands.chart.importers.dispatcher import ImportChartsCommand
        from superset.commands.dashboard.importers.dispatcher import ImportDashboardsCommand
        from superset.commands.dataset.importers.dispatcher import ImportDatasetsCommand
        from superset.commands.importers.v1.utils import (
            METADATA_FILE_NAME,
            get_contents_from_bundle,
        )
        from superset.models.core import Database

        if plan["initialize"]:
            from flask_migrate import upgrade

            upgrade()
            appbuilder.add_permissions(update_perms=True)
            security_manager.sync_role_definitions()
        admin = security_manager.find_user(username=plan["admin_user"])
        if admin is None:
            admin = security_manager.add_user(
                plan["admin_user"],
                "lakepulse",
                "admin",
                "admin@lakepulse.invalid",
                [security_manager.find_role("Admin")],
                password=plan["admin_password"],
            )
            db.session.commit()
        g.user = admin
        gamma = security_manager.find_role("Gamma")
        done = []
        for tenant in plan["tenants"]:
            with zipfile.ZipFile(tenant["bundle"]) as bundle:
                contents = get_contents_from_bundle(bundle)
            imported = db.session.query(Database).filter_by(uuid=tenant["database_uuid"]).first()
            if imported is not None:
                # A dashboard import leaves the datasets and charts a previous start imported as
                # they were (it imports them with overwrite=False): they are replaced first, each
                # kind by its own command, which checks the bundle's type (so it is left out).
                metadata = yaml.safe_load(contents[METADATA_FILE_NAME])
                metadata.pop("type", None)
                parts = {**contents, METADATA_FILE_NAME: yaml.safe_dump(metadata)}
                for command in (ImportDatasetsCommand, ImportChartsCommand):
                    command(parts, overwrite=True, passwords=tenant["passwords"]).run()
            ImportDashboardsCommand(contents, overwrite=True, passwords=tenant["passwords"]).run()
            database = db.session.query(Database).filter_by(uuid=tenant["database_uuid"]).one()
            role = security_manager.find_role(tenant["role"]) or security_manager.add_role(
                tenant["role"]
            )
            access = security_manager.add_permission_view_menu("database_access", database.perm)
            security_manager.add_permission_role(role, access)
            user = security_manager.find_user(username=tenant["user"])
            if user is None:
                user = security_manager.add_user(
                    tenant["user"],
                    tenant["user"],
                    "tenant",
                    f"{tenant['user']}@lakepulse.invalid",
                    [gamma, role],
                    password=tenant["password"],
                )
            else:
                user.roles = [gamma, role]
                security_manager.reset_password(user.id, tenant["password"])
            db.session.commit()
            done.append(tenant["user"])
        print(json.dumps({"provisioned": done}))


if __name__ == "__main__":
    main()
