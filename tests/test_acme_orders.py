"""Orders and challenges survive being stored as JSON and read back."""

from __future__ import annotations

import datetime
import json

from linkcert.acme import AcmeStatus, Http01Challenge, OrderInfo


def test_order_round_trips_through_json() -> None:
    order = OrderInfo(
        url="https://ca.test/order/1",
        status=AcmeStatus.PENDING,
        identifiers=("links.example.com",),
        authorization_urls=("https://ca.test/authz/1",),
        finalize_url="https://ca.test/order/1/finalize",
        expires=datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC),
    )
    stored = json.dumps(order.to_json())
    assert OrderInfo.from_json(json.loads(stored)) == order
    assert order.domain == "links.example.com"


def test_finished_order_round_trips_through_json() -> None:
    order = OrderInfo(
        url="https://ca.test/order/2",
        status=AcmeStatus.INVALID,
        identifiers=("links.example.com",),
        authorization_urls=(),
        finalize_url="https://ca.test/order/2/finalize",
        certificate_url="https://ca.test/cert/2",
        error="404 from http://links.example.com/.well-known/acme-challenge/x",
    )
    assert OrderInfo.from_json(json.loads(json.dumps(order.to_json()))) == order


def test_challenge_round_trips_through_json_and_says_what_to_serve() -> None:
    challenge = Http01Challenge(
        domain="links.example.com",
        token="tok",
        key_authorization="tok.thumb",
        url="https://ca.test/chall/1",
        authorization_url="https://ca.test/authz/1",
        authorization_status=AcmeStatus.PENDING,
        status=AcmeStatus.PENDING,
    )
    assert Http01Challenge.from_json(json.loads(json.dumps(challenge.to_json()))) == challenge
    assert challenge.path == "/.well-known/acme-challenge/tok"
    assert challenge.needs_answer
    validated = Http01Challenge.from_json(
        {**challenge.to_json(), "authorization_status": "valid", "status": "valid"}
    )
    assert not validated.needs_answer
