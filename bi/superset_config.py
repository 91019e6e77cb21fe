"""Superset configuration for lakepulse, loaded through ``SUPERSET_CONFIG_PATH``.

Runs inside Superset's own virtualenv (``bi/.venv``), so it imports nothing of lakepulse: every
setting comes from the environment that ``lakepulse bi`` prepares. Metadata (SQLite) and the
secret key live under ``$LAKEPULSE_HOME/bi``; nothing here is a secret.
"""

import json
import os
import time
from pathlib import Path

BI_HOME = Path(os.environ["LAKEPULSE_BI_HOME"])

SECRET_KEY = (BI_HOME / "secret_key").read_text().strip()
SQLALCHEMY_DATABASE_URI = f"sqlite:///{BI_HOME / 'superset.db'}?check_same_thread=false"
DATA_DIR = str(BI_HOME)

# Local, offline: no example data, no outbound calls, no thumbnails or reports (no Celery).
SUPERSET_LOAD_EXAMPLES = False
FEATURE_FLAGS = {"ALERT_REPORTS": False, "THUMBNAILS": False, "EMBEDDED_SUPERSET": False}
TALISMAN_ENABLED = False  # served on loopback over plain HTTP
CONTENT_SECURITY_POLICY_WARNING = False
# Dashboards show the live marts: a chart re-queries PostgreSQL at most once a minute.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
DATA_CACHE_CONFIG = CACHE_CONFIG
ROW_LIMIT = 10000

QUERY_LOG = BI_HOME / "queries.jsonl"


def QUERY_LOGGER(database, query, schema=None, client=None, security_manager=None, log_params=None):
    """Append every SQL statement Superset sends (charts and SQL Lab) to ``queries.jsonl``, with
    the connecting user but never the password: ``benchmarks/bench_serving.py`` replays these to
    measure the dashboards' real queries."""
    url = getattr(database, "username", None) or getattr(
        getattr(database, "url", None), "username", None
    )
    with open(QUERY_LOG, "a") as log:
        log.write(json.dumps({"at": time.time(), "user": url, "sql": query}) + "\n")
