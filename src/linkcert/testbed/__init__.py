"""Real programs standing in for the outside world in tests, the demo and benchmarks."""

from linkcert.testbed.http01 import ChallengeResponder
from linkcert.testbed.pebble import CertStatus, PebbleServer, PebbleStartError, new_eab_hmac_key

__all__ = [
    "CertStatus",
    "ChallengeResponder",
    "PebbleServer",
    "PebbleStartError",
    "new_eab_hmac_key",
]
