"""Test settings: the real Postgres and Redis, on their own database and Redis db."""

import os
import tempfile

# Set before the project settings read them; the server and worker processes that system
# tests start inherit the same environment, hence the same data directory and keys.
os.environ.setdefault("WEIR_DATA_DIR", os.path.join(tempfile.gettempdir(), "weir-tests"))
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("WEIR_RETRY_AFTER", "1")
os.environ.setdefault("WEIR_READY_TIMEOUT", "120")

from controlplane.settings import *  # noqa: E402,F403

LOGGING["root"]["level"] = "WARNING"  # noqa: F405

# Django empties the tables between transactional tests with TRUNCATE, which the audit log's
# trigger refuses unless the session says so (controlplane/audit/migrations/0002).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c weir.audit_truncate=on"  # noqa: F405
