"""Schemathesis against the API's own OpenAPI document: generated requests never crash it.

Every operation is called with data generated from the schema (valid and invalid), with an
operator token, and every answer must be a documented, non-5xx response.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from linkcert.api import create_app
from linkcert.keys import generate_master_key
from linkcert.store import Store
from tests.api_support import SETTINGS, bearer, make_world

# Schemathesis parametrizes at collection time, so the application (and its throwaway store)
# is built when the module is imported.
_DIR = Path(tempfile.mkdtemp(prefix="linkcert-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_STORE = Store(f"sqlite:///{_DIR / 'api.sqlite3'}")
_STORE.migrate()
_WORLD = make_world(_STORE)
_SETTINGS = SETTINGS.model_copy(
    update={
        "tracking_key": SecretStr("k" * 40),
        "master_key": SecretStr(generate_master_key("schemathesis")),
    }
)
_APP = create_app(_STORE, _SETTINGS, rate_limit=None)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_crash_the_api(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        headers=bearer(_WORLD.operator),
        checks=[not_a_server_error, status_code_conformance],
    )
