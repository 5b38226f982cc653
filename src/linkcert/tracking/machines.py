"""Which clicks and opens are not a person: the `machine` reason of an event.

Machine requests are answered like any other (a scanner that got an error would flag the
mail) and recorded, marked with why, so that the platform decides what to count:

- `head`: a HEAD request, which link scanners and prefetchers send and browsers do not;
- `agent:<name>`: a user agent from machine_agents.json (scanners, link preview fetchers,
  crawlers, HTTP libraries), kept as data with the source of each entry;
- `soon_after_mint`: a click or open within a few seconds (`event_machine_seconds`) of the
  link being minted, before a person could have read the mail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

MAX_USER_AGENT_BYTES = 512
_CACHE_SIZE = 4096


def load_agents() -> list[dict[str, Any]]:
    """The entries of machine_agents.json."""
    text = resources.files("linkcert.tracking").joinpath("machine_agents.json").read_text()
    agents: list[dict[str, Any]] = json.loads(text)["agents"]
    return agents


class AgentMatcher:
    """Finds the machine agent a User-Agent header names, remembering recent answers: the same
    few user agents make most requests."""

    __slots__ = ("_cache", "_names", "_pattern")

    def __init__(self, agents: list[dict[str, Any]] | None = None) -> None:
        entries = load_agents() if agents is None else agents
        self._names = {entry["match"].lower().encode("ascii"): entry["name"] for entry in entries}
        alternatives = b"|".join(re.escape(match) for match in self._names)
        self._pattern = re.compile(alternatives, re.IGNORECASE) if alternatives else None
        self._cache: dict[bytes, str | None] = {}

    @property
    def known(self) -> dict[bytes, str | None]:
        """The answers remembered (read only): a hot path may look there first and call
        `reason` only for a user agent missing from it."""
        return self._cache

    def reason(self, user_agent: bytes) -> str | None:
        cache = self._cache
        try:
            return cache[user_agent]
        except KeyError:
            pass
        found = None if self._pattern is None else self._pattern.search(user_agent)
        reason = None if found is None else "agent:" + self._names[found.group(0).lower()]
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[user_agent] = reason
        return reason


@dataclass(frozen=True, slots=True)
class MachinePolicy:
    """How the edge marks machine requests."""

    soon_after_mint: float = 5.0  # seconds; 0 turns the check off
    agents: AgentMatcher | None = None

    def reason(
        self, method: bytes, user_agent: bytes | None, minted_at: int | None, now: float
    ) -> str | None:
        if method == b"HEAD":
            return "head"
        if user_agent and self.agents is not None:
            reason = self.agents.reason(user_agent)
            if reason is not None:
                return reason
        if minted_at is not None and 0 <= now - minted_at < self.soon_after_mint:
            return "soon_after_mint"
        return None
