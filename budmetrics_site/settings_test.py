"""Test settings: the production settings plus a throw-away chDB directory per run.

Postgres and Redis come from DATABASE_URL / REDIS_URL as the README's test command sets
them; the test database name carries the process id so parallel runs never collide.
"""

import atexit
import os
import shutil
import tempfile

_chdb_dir = tempfile.mkdtemp(prefix="budmetrics-chdb-test-")
atexit.register(shutil.rmtree, _chdb_dir, ignore_errors=True)
os.environ["CLICKHOUSE_EMBEDDED_PATH"] = _chdb_dir
os.environ.setdefault("CLICKHOUSE_HOST", "")
# Fixtures use fixed historical dates; TTL must not drop them on insert.
os.environ.setdefault("CLICKHOUSE_RETENTION_DAYS", "7300")
os.environ.setdefault("ROLLUP_RETENTION_DAYS", "7300")
# Day tiers in a +5:30 zone and a DST zone (the fixtures span New York's spring forward).
os.environ.setdefault("ROLLUP_DAY_ZONES", "Asia/Kolkata,America/New_York")
# Audit rows in the request, so a test sees them as soon as it has the response.
os.environ.setdefault("AUDIT_WRITE_MODE", "sync")

from budmetrics_site.settings import *  # noqa: E402,F403
from budmetrics_site.settings import CACHES, DATABASES  # noqa: E402

_run_id = os.getpid()
DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_budmetrics_{_run_id}"
CACHES["default"]["KEY_PREFIX"] = f"budmetrics-test-{_run_id}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
