"""Real programs standing in for the outside world in tests, the demo and benchmarks."""

from linkcert.testbed.http01 import ChallengeResponder
from linkcert.testbed.pebble import CertStatus, PebbleServer, PebbleStartError, new_eab_hmac_key
from linkcert.testbed.waiting import NotInTime, free_port, wait_for, wait_for_async

__all__ = [
    "CertStatus",
    "ChallengeResponder",
    "NotInTime",
    "PebbleServer",
    "PebbleStartError",
    "free_port",
    "new_eab_hmac_key",
    "wait_for",
    "wait_for_async",
]
