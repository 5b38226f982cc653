"""The environment for `linkcert` child processes, as the tests and benchmarks start them."""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr

from linkcert.config import Settings


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a `linkcert` child process exactly these settings.

    This process's environment without any LINKCERT_ variable of its own, so that nothing set
    outside leaks into the child, then one variable for each setting that has a value, and
    last `extra`, which wins over both.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKCERT_")}
    for name in Settings.model_fields:
        value: Any = getattr(settings, name)
        if value is None or value == ():
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env["LINKCERT_" + name.upper()] = str(value)
    env["LINKCERT_DATABASE_URL"] = settings.effective_database_url
    env.update(extra)
    return env
