"""Running totals the edge keeps for metrics. Plain integers: incrementing them is the cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class EdgeCounters:
    connections_accepted: int = 0
    requests: int = 0
    proxied_requests: int = 0  # of `requests`, those relayed to an origin (proxy mode)
    responses_by_status: Counter[int] = field(default_factory=Counter)
    clicks_recorded: int = 0
    opens_recorded: int = 0
    clicks_dropped: int = 0
    invalid_tokens: int = 0
    challenges_served: int = 0
    challenge_lookup_failures: int = 0
    bad_requests: int = 0
    request_timeouts: int = 0
    handshakes_completed: int = 0
    handshakes_failed: Counter[str] = field(default_factory=Counter)
    """By reason: unknown_name, no_sni, certificate_unusable, not_tls, protocol_version,
    no_shared_cipher, timeout, client_closed, other."""
