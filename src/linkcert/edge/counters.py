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
    machine_recorded: int = 0  # of the clicks and opens recorded: marked as not a person
    invalid_tokens: int = 0
    unserved_hosts: int = 0  # tracked links asked on a name the edge does not serve
    retired_key_tokens: int = 0  # of invalid_tokens: minted with a key no longer listed
    challenges_served: int = 0
    challenges_unknown: int = 0  # refused from memory: no pending order for the name
    challenge_store_reads: int = 0  # reads of a pending name's tokens memory did not have
    challenge_lookup_failures: int = 0
    bad_requests: int = 0
    request_timeouts: int = 0
    handshakes_completed: int = 0
    handshakes_failed: Counter[str] = field(default_factory=Counter)
    """By reason: unknown_name, no_sni, certificate_unusable, certificate_unavailable (served,
    but its certificate could not be loaded in time), not_tls, protocol_version,
    no_shared_cipher, timeout, client_closed, other."""
    connections_refused: Counter[str] = field(default_factory=Counter)
    """Connections closed as soon as they were accepted, by reason: process_cap (this process
    holds its maximum and none of them is idle), address_cap (the same for one client
    address)."""
    connections_closed: Counter[str] = field(default_factory=Counter)
    """Connections the edge closed on its own, by reason: first_byte_timeout (nothing sent in
    time: no request on HTTP, no ClientHello on HTTPS), handshake_timeout, idle_timeout,
    write_stalled (the client stopped reading), process_cap and address_cap (the oldest idle
    connection closed to make room for a new one)."""
    click_repeats_not_recorded: int = 0
    """Clicks and opens answered but not recorded: one client address repeating one link past
    the repeat limit."""
