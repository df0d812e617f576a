"""Settings of the daphne process the browser tests start (tests/integration/conftest.py).

The project's own settings, unchanged, except that the database is the test database the
pytest session created (SQLite file or PostgreSQL `test_*` database, passed in
PORTAL_LIVE_TEST_DB_NAME) and static files are served straight from the finders, so the
tests need no `collectstatic`."""

import os

from cloudportal.settings import *  # noqa: F401,F403
from cloudportal.settings import ALLOWED_HOSTS, DATABASES

DATABASES["default"]["NAME"] = os.environ["PORTAL_LIVE_TEST_DB_NAME"]
if "127.0.0.1" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append("127.0.0.1")
WHITENOISE_USE_FINDERS = True
