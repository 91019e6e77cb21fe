"""The project settings analytics.js and analytics-next load at start
(``GET {cdnURL}/v1/projects/{writeKey}/settings``): the Segment.io destination pointed back at
this collector, and nothing else to load."""

from __future__ import annotations

import re
from typing import Any

from ingestion.tenants import TenantRegistry
from ingestion.wire import HttpError
from lakepulse.core.settings import Settings

SETTINGS_ROUTE = re.compile(r"/v1/projects/([^/]{1,512})/settings")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def project_settings(
    write_key: str, scope: dict, tenants: TenantRegistry, settings: Settings
) -> dict[str, Any]:
    """The settings for ``write_key``'s page: no device-mode destinations, middleware or
    remote plugins, and the SDK's own metrics off. The host is the request's (when it is a
    host name), so a page reaches the collector the way it reached the settings."""
    if tenants.resolve(write_key) is None:
        raise HttpError(401, "invalid_write_key", "unknown write key")
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not _HOST.fullmatch(host):
        host = f"{settings.collector_host}:{settings.collector_port}"
    proto = headers.get(b"x-forwarded-proto", scope.get("scheme", "http").encode())
    protocol = "https" if proto.strip().lower() == b"https" else "http"
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": protocol,
                "addBundledMetadata": True,
                "unbundledIntegrations": [],
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
