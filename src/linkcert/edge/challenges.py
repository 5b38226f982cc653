"""ACME HTTP-01 answers kept in memory, so that a challenge request costs no database read.

The integrator feeds the book like the certificate cache: the names with a pending order, each
with the tokens published for it so far (`replace_all` from a periodic read of the store,
`put` for one name as soon as a worker announces a change). A request is then answered from
memory, or refused from memory when its host has no pending order: a flood of made-up tokens
never reaches the store.

Until the book hears every announcement (`announced`: on PostgreSQL, once the edge listens for
them and has read everything pending since), a name memory does not know is read too: an edge
process that has just started, or lost its listening connection, may not have heard of an order
a worker placed a moment ago, and the CA asks within milliseconds of the worker's answer.

One case is left to the store: a token not (yet) in memory for a name that has a pending order.
A worker publishes its tokens moments before the CA comes for them, and the feed may not have
caught up; so the book reads that one name's tokens (`read_name`, which the integrator runs on a
small thread pool of its own). Reads of one name are coalesced: however many requests wait,
one read is in flight per name, and a request waits at most for the read that starts after it
arrived, which sees every token published before the CA asked.

Not thread-safe: call it from the event loop thread that runs the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from linkcert.edge.counters import EdgeCounters

NameReader = Callable[[str], Awaitable[Mapping[str, str] | None]]
"""Reads one name's tokens (token → key authorization) from the store; None when the name has
no pending order any more."""


@dataclass(slots=True)
class _Name:
    tokens: dict[str, str]
    as_of: float  # when the read that last set it started (loop time)


@dataclass(slots=True)
class _Reads:
    running: asyncio.Task[None] | None = None
    next: asyncio.Future[BaseException | None] | None = None


class ChallengeBook:
    """Pending names and their HTTP-01 tokens, answered from memory."""

    def __init__(self, read_name: NameReader | None = None) -> None:
        self._read_name = read_name
        self._names: dict[str, _Name] = {}
        self._tokens: dict[str, tuple[str, str]] = {}  # token → (name, key authorization)
        self._reads: dict[str, _Reads] = {}
        self.store_reads = 0  # reads of one name, for a token memory did not have
        self.counters: EdgeCounters | None = None  # the edge's, set by the Edge
        # Every change of a pending name reaches the book at once; while False, a name the
        # book does not hold is read from the store rather than refused.
        self.announced = True

    # Feeding ------------------------------------------------------------------------------

    def put(self, name: str, tokens: Mapping[str, str] | None, as_of: float) -> None:
        """What a read started at `as_of` (loop time) found for `name`: its tokens, or None
        when it has no pending order. A read started earlier than what the book holds only
        adds tokens, never removes: the later read knows better."""
        current = self._names.get(name)
        if current is not None and current.as_of > as_of:
            if tokens:
                for token, key_authorization in tokens.items():
                    current.tokens[token] = key_authorization
                    self._tokens[token] = (name, key_authorization)
            return
        if current is not None:
            for token in current.tokens:
                self._tokens.pop(token, None)
        if tokens is None:
            self._names.pop(name, None)
            return
        self._names[name] = _Name(dict(tokens), as_of)
        for token, key_authorization in tokens.items():
            self._tokens[token] = (name, key_authorization)

    def replace_all(self, pending: Mapping[str, Mapping[str, str]], as_of: float) -> None:
        """Everything pending, from one read of the store started at `as_of`."""
        for name in [name for name in self._names if name not in pending]:
            self.put(name, None, as_of)
        for name, tokens in pending.items():
            self.put(name, tokens, as_of)

    def pending_names(self) -> list[str]:
        return list(self._names)

    @property
    def tokens_held(self) -> int:
        return len(self._tokens)

    # Answering ----------------------------------------------------------------------------

    def answer(self, host: str | None, token: str) -> str | Coroutine[Any, Any, str | None] | None:
        """The key authorization for `token` on `host`; None when there is none (no store read
        was made); or, for a name with a pending order whose token memory does not hold, a
        coroutine that reads the name and then answers."""
        known = self._tokens.get(token)
        if known is not None and known[0] == host:
            return known[1]
        if host is None or self._read_name is None:
            return None
        if host not in self._names and self.announced:
            return None
        return self._read_and_answer(host, token)

    async def _read_and_answer(self, name: str, token: str) -> str | None:
        await self._read_after_now(name)
        known = self._tokens.get(token)
        return known[1] if known is not None and known[0] == name else None

    async def _read_after_now(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        reads = self._reads.get(name)
        if reads is None:
            reads = self._reads[name] = _Reads()
        if reads.next is None:
            reads.next = loop.create_future()
        if reads.running is None:
            reads.running = loop.create_task(self._run_reads(name, reads))
        failure = await asyncio.shield(reads.next)
        if failure is not None:
            raise failure

    async def _run_reads(self, name: str, reads: _Reads) -> None:
        assert self._read_name is not None
        loop = asyncio.get_running_loop()
        try:
            while reads.next is not None:
                done, reads.next = reads.next, None
                as_of = loop.time()
                self.store_reads += 1
                if self.counters is not None:
                    self.counters.challenge_store_reads += 1
                try:
                    tokens = await self._read_name(name)
                except Exception as exc:
                    done.set_result(exc)
                    continue
                self.put(name, tokens, as_of)
                done.set_result(None)
        finally:
            reads.running = None
            if reads.next is not None:  # cancelled: let the waiters go
                with contextlib.suppress(asyncio.InvalidStateError):
                    reads.next.set_result(RuntimeError("the edge is stopping"))
            self._reads.pop(name, None)
