"""Fixtures shared by the test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linkcert.localdns import LocalDNSServer


@pytest.fixture
def dns_server() -> Iterator[LocalDNSServer]:
    """A started LocalDNSServer on 127.0.0.1 (a free port), empty, stopped after the test."""
    with LocalDNSServer() as server:
        yield server
