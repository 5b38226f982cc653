"""ACME HTTP-01 answers from memory: known tokens answered, made-up ones refused without a read,
and reads for a pending name's missing token coalesced, over real sockets on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from linkcert.edge import ChallengeBook
from tests.edge_support import close_writer, exchange, get, read_response, running_edge

PENDING = "new.shop.test"


class Store:
    """What the book's reader sees: the names with an open order and their tokens."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, str]] = {}
        self.reads: list[str] = []
        self.gate: asyncio.Event | None = None

    async def read(self, name: str) -> Mapping[str, str] | None:
        self.reads.append(name)
        if self.gate is not None:
            await self.gate.wait()
        tokens = self.pending.get(name)
        return dict(tokens) if tokens is not None else None


def challenge(token: str, host: str | None) -> bytes:
    return get(f"/.well-known/acme-challenge/{token}", host)


async def test_known_tokens_are_answered_and_unknown_ones_refused_without_a_read() -> None:
    store = Store()
    book = ChallengeBook(store.read)
    book.replace_all({PENDING: {"tok-1": "tok-1.thumb"}, "waiting.shop.test": {}}, as_of=0.0)
    async with running_edge(challenge_lookup=book) as env:
        found = await env.http(challenge("tok-1", PENDING))
        assert (found.status, found.body) == (200, b"tok-1.thumb")
        # The same token asked for on another name is not that name's.
        assert (await env.http(challenge("tok-1", "other.shop.test"))).status == 404
        for number in range(50):
            response = await env.http(challenge(f"made-up-{number}", f"x{number}.flood.test"))
            assert response.status == 404
        assert store.reads == []
        assert env.edge.counters.challenges_unknown == 51
        assert env.edge.counters.challenges_served == 1

        # A name with an open order, whose token memory does not hold yet: read, then answered.
        store.pending["waiting.shop.test"] = {"fresh": "fresh.thumb"}
        fresh = await env.http(challenge("fresh", "waiting.shop.test"))
        assert (fresh.status, fresh.body) == (200, b"fresh.thumb")
        assert store.reads == ["waiting.shop.test"]
        # Now in memory: no second read.
        assert (await env.http(challenge("fresh", "waiting.shop.test"))).status == 200
        assert store.reads == ["waiting.shop.test"]
        assert env.edge.counters.challenge_store_reads == 1


async def test_reads_of_one_pending_name_are_coalesced() -> None:
    store = Store()
    store.gate = asyncio.Event()
    store.pending[PENDING] = {}
    book = ChallengeBook(store.read)
    book.put(PENDING, {}, as_of=0.0)
    async with running_edge(challenge_lookup=book) as env:
        connections = [await env.open_http() for _ in range(30)]
        try:
            connections[0][1].write(challenge("flood-0", PENDING))
            await until(lambda: len(store.reads) == 1)
            # While that read is on, 29 more unknown tokens, and the real one, for the same name.
            store.pending[PENDING] = {"real": "real.thumb"}
            for number, (_, writer) in enumerate(connections[1:-1], start=1):
                writer.write(challenge(f"flood-{number}", PENDING))
            connections[-1][1].write(challenge("real", PENDING))
            await until(lambda: env.edge.counters.requests == 30)
            store.gate.set()
            answers = [await read_response(reader) for reader, _ in connections]
        finally:
            for _, writer in connections:
                await close_writer(writer)
        assert [answer.status for answer in answers] == [404] * 29 + [200]
        assert answers[-1].body == b"real.thumb"
        # One read in flight, and one after it for everything that came meanwhile.
        assert store.reads == [PENDING, PENDING]


async def test_a_read_started_earlier_never_removes_what_a_later_one_found() -> None:
    book = ChallengeBook()
    book.put(PENDING, {"late": "late.thumb"}, as_of=10.0)  # announced and read at 10
    book.replace_all({}, as_of=9.0)  # a full pass that started at 9 saw no open order yet
    assert book.answer(PENDING, "late") == "late.thumb"
    book.replace_all({PENDING: {"other": "other.thumb"}}, as_of=9.5)
    assert book.answer(PENDING, "late") == "late.thumb"
    assert book.answer(PENDING, "other") == "other.thumb"
    book.replace_all({}, as_of=11.0)  # the order is finished: everything goes
    assert book.answer(PENDING, "late") is None
    assert book.pending_names() == [] and book.tokens_held == 0


async def test_a_failing_read_answers_503_and_the_next_request_reads_again() -> None:
    reads = 0

    async def broken(name: str) -> Mapping[str, str] | None:
        nonlocal reads
        reads += 1
        raise OSError("the database is down")

    book = ChallengeBook(broken)
    book.put(PENDING, {}, as_of=0.0)
    async with running_edge(challenge_lookup=book) as env:
        for expected_reads in (1, 2):
            response = await exchange(env.http_port, challenge("tok", PENDING))
            assert response.status == 503
            assert reads == expected_reads
        assert env.edge.counters.challenge_lookup_failures == 2


async def until(predicate: object, attempts: int = 500) -> None:
    assert callable(predicate)
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_until_every_change_is_announced_an_unknown_name_is_read() -> None:
    """An edge process that has just started (or lost its listening connection) may not have
    heard of an order placed a moment ago: the name is read, and the token answered."""
    store = Store()
    store.pending["just-ordered.shop.test"] = {"tok-9": "tok-9.thumb"}
    book = ChallengeBook(store.read)
    book.announced = False
    answer = book.answer("just-ordered.shop.test", "tok-9")
    assert not isinstance(answer, str) and answer is not None
    assert await answer == "tok-9.thumb"
    assert store.reads == ["just-ordered.shop.test"]

    book.announced = True  # now every order is announced: a name not held is refused unread
    assert book.answer("made-up.shop.test", "tok-0") is None
    assert store.reads == ["just-ordered.shop.test"]
