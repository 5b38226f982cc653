"""API tokens in the store: making, checking and revoking them, and their migration."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, update
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner, Result

from linkcert.auth import (
    TOKEN_PATTERN,
    AuthenticationError,
    authenticate,
    create_token,
    list_tokens,
    principal_of,
    revoke_token,
)
from linkcert.cli import app
from linkcert.domains import NotFound, create_account
from linkcert.store import ApiToken, Base, Store, utcnow
from linkcert.store.db import alembic_config


def test_a_token_is_shown_once_and_only_its_hash_is_kept(store: Store) -> None:
    account = create_account(store, "shop")
    plain, row = create_token(store, "shop", "billing")
    assert plain.startswith("lct_") and len(plain) == 4 + 43
    assert row.account_id == account.id and row.name == "billing"
    assert row.prefix == plain[:8]
    with store.session() as session:
        stored = session.scalars(select(ApiToken)).one()
        assert stored.token_hash == hashlib.sha256(plain.encode()).hexdigest()
        assert plain not in (stored.token_hash, stored.prefix, stored.name)


def test_tokens_authenticate_as_their_account_or_as_operator(store: Store) -> None:
    account = create_account(store, "shop")
    account_token, account_row = create_token(store, account.id, "app")
    operator_token, operator_row = create_token(store, None, "ops")

    who = authenticate(store, account_token)
    assert (who.account_id, who.is_operator, who.token_id) == (account.id, False, account_row.id)
    assert who.may_see_account(account.id) and not who.may_see_account(account.id + 1)

    boss = authenticate(store, operator_token)
    assert (boss.account_id, boss.is_operator, boss.token_id) == (None, True, operator_row.id)
    assert boss.may_see_account(12345)


def test_use_is_recorded_about_once_a_minute(store: Store) -> None:
    plain, row = create_token(store, None, "ops")
    authenticate(store, plain)
    with store.session() as session:
        first = session.get(ApiToken, row.id)
        assert first is not None and first.last_used_at is not None
        used = first.last_used_at
    authenticate(store, plain)
    with store.session() as session:
        assert session.get(ApiToken, row.id).last_used_at == used  # type: ignore[union-attr]
        session.execute(update(ApiToken).values(last_used_at=used - timedelta(minutes=2)))
    authenticate(store, plain)
    with store.session() as session:
        assert session.get(ApiToken, row.id).last_used_at > used  # type: ignore[union-attr, operator]


BAD_TOKENS = [
    ("", "malformed"),
    ("lct_short", "malformed"),
    ("Bearer lct_" + "a" * 43, "malformed"),
    ("lct_" + "a" * 42 + "!", "malformed"),
    ("lct_" + "a" * 43, "unknown"),
]


def test_bad_tokens_are_refused(store: Store) -> None:
    create_token(store, None, "ops")
    for presented, reason in BAD_TOKENS:
        with pytest.raises(AuthenticationError) as caught:
            authenticate(store, presented)
        assert caught.value.reason == reason, presented


def test_a_revoked_token_stops_working(store: Store) -> None:
    plain, row = create_token(store, None, "ops")
    revoked = revoke_token(store, row.id)
    assert revoked.revoked_at is not None
    assert revoke_token(store, row.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(AuthenticationError, match="revoked") as caught:
        authenticate(store, plain)
    assert caught.value.reason == "revoked"
    with pytest.raises(NotFound):
        revoke_token(store, row.id + 100)


def test_listing_and_bad_input(store: Store) -> None:
    create_account(store, "a")
    create_account(store, "b")
    create_token(store, "a", "one")
    create_token(store, "b", "two")
    create_token(store, None, "ops")
    assert [t.name for t in list_tokens(store)] == ["one", "two", "ops"]
    assert [t.name for t in list_tokens(store, "b")] == ["two"]
    with pytest.raises(NotFound):
        create_token(store, "nobody", "x")
    with pytest.raises(ValueError, match="1 to 200"):
        create_token(store, None, "  ")
    with pytest.raises(ValueError, match="1 to 200"):
        create_token(store, None, "x" * 201)


def test_migration_matches_the_model_and_goes_both_ways(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "api_tokens" in repr(d)] == []

    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert "api_tokens" not in inspect(store.engine).get_table_names()
    store.migrate()
    assert store.schema_is_current()
    create_token(store, None, "after the round trip")


def test_times_are_aware_utc(store: Store) -> None:
    _, row = create_token(store, None, "ops")
    with store.session() as session:
        again = session.get(ApiToken, row.id)
        assert again is not None
        assert again.created_at.tzinfo is not None
        assert abs(again.created_at - utcnow()) < timedelta(minutes=1)


# --- the `linkcert token` commands ------------------------------------------------------------


def run(store: Store, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"LINKCERT_DATABASE_URL": store.url})


def test_cli_makes_lists_and_revokes_tokens(store: Store) -> None:
    create_account(store, "shop")
    made = run(store, "token", "create", "--account", "shop", "--name", "sync")
    assert made.exit_code == 0, made.output
    plain = made.stdout.strip()
    assert TOKEN_PATTERN.fullmatch(plain)
    assert "not shown again" in made.stderr
    assert authenticate(store, plain).account_id is not None

    ops = run(store, "token", "create", "--operator", "--json")
    assert ops.exit_code == 0, ops.output
    data = json.loads(ops.stdout)
    assert data["operator"] is True and data["name"] == "operator"
    assert authenticate(store, data["token"]).is_operator

    listed = run(store, "token", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["account"]) for r in rows] == [("sync", "shop"), ("operator", None)]
    assert all("token" not in r and r["prefix"] for r in rows)
    table = run(store, "token", "list")
    assert table.exit_code == 0 and "sync" in table.stdout and plain not in table.stdout

    revoked = run(store, "token", "revoke", str(rows[0]["id"]))
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthenticationError):
        authenticate(store, plain)


def test_cli_refuses_unclear_requests(store: Store) -> None:
    create_account(store, "shop")
    for args in (
        ["token", "create"],
        ["token", "create", "--account", "shop", "--operator"],
        ["token", "create", "--account", "nobody"],
        ["token", "list", "--account", "nobody"],
        ["token", "revoke", "999"],
    ):
        result = run(store, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.stderr, args
    assert list_tokens(store) == []


def test_a_tokens_kind_is_stated_and_an_account_token_never_turns_operator(
    store: Store,
) -> None:
    create_account(store, "shop")
    account_plain, account_row = create_token(store, "shop", "billing")
    operator_plain, operator_row = create_token(store, None, "ops")
    assert (account_row.kind, operator_row.kind) == ("account", "operator")
    assert not authenticate(store, account_plain).is_operator
    assert authenticate(store, operator_plain).is_operator
    # Losing the account link (a future ON DELETE SET NULL, a manual fix) is refused by the
    # database rather than turning the account's token into an operator's.
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == account_row.id).values(account_id=None)
        )
    assert principal_of(ApiToken(id=9, kind="account", account_id=None, name="x")) is None
    assert principal_of(ApiToken(id=9, kind="operator", account_id=3, name="x")) is None


def test_the_kind_migration_backfills_from_the_account(store: Store) -> None:
    create_account(store, "shop")
    create_token(store, "shop", "billing")
    create_token(store, None, "ops")
    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    assert "kind" not in {c["name"] for c in inspect(store.engine).get_columns("api_tokens")}
    assert "web_sessions" not in inspect(store.engine).get_table_names()
    store.migrate()
    with store.session() as session:
        kinds = {n: k for n, k in session.execute(select(ApiToken.name, ApiToken.kind))}
    assert kinds == {"billing": "account", "ops": "operator"}
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "api_tokens" in repr(d) or "web_sessions" in repr(d)] == []
