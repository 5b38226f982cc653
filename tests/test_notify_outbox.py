"""Recording notifications: who gets one, repeats, the outbox transaction, the migration."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import inspect, select

from linkcert.config import Settings
from linkcert.domains import find_account
from linkcert.notify import NotificationKind, Notifier
from linkcert.notify import emit as emit_for_settings
from linkcert.states import FailureClass
from linkcert.store import Base, Domain, Store
from linkcert.store.db import alembic_config
from linkcert.store.models import Delivery, Notification
from tests.notify_support import T0, Clock, add_customer, give_certificate

SETTINGS = Settings(
    smtp_host="127.0.0.1",
    smtp_from="alerts@platform.test",
    operator_email="noc@platform.test",
    webhook_urls=("http://127.0.0.1:9/a", "http://127.0.0.1:9/b?token=x"),
    webhook_secret=SecretStr("s3cret-for-tests"),
)


def emit(
    store: Store,
    notifier: Notifier,
    kind: NotificationKind,
    domain_id: int,
    details: dict[str, Any] | None = None,
) -> Notification | None:
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        return notifier.emit(session, kind, domain, message="Something happened.", details=details)


def targets(store: Store, notification_id: int) -> set[tuple[str, str]]:
    with store.session() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.notification_id == notification_id)
        ).all()
        return {(row.channel, row.target) for row in rows}


def test_a_secured_domain_tells_the_account_and_the_webhooks(store: Store) -> None:
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test", "b@alpha.test"])
    give_certificate(store, domain_id, T0, T0.replace(month=6), serial="fe01")
    notifier = Notifier.from_settings(SETTINGS, Clock())

    notification = emit(store, notifier, NotificationKind.SECURED, domain_id)

    assert notification is not None
    assert notification.kind == "secured" and notification.domain_name == "links.alpha.test"
    assert notification.account_name == "alpha"
    assert notification.public_id.startswith("evt_")
    assert notification.data["serial"] == "fe01"
    assert notification.data["not_after"].startswith("2026-06-02")
    assert targets(store, notification.id) == {
        ("email", "a@alpha.test"),
        ("email", "b@alpha.test"),
        ("webhook", "http://127.0.0.1:9/a"),
        ("webhook", "http://127.0.0.1:9/b?token=x"),
    }
    with store.session() as session:
        due = session.scalars(select(Delivery)).all()
        assert {(d.status, d.attempts, d.next_attempt_at) for d in due} == {("pending", 0, T0)}


@pytest.mark.parametrize(
    ("failure", "operators_told"),
    [(FailureClass.CA_UNAVAILABLE, True), (FailureClass.CAA_FORBIDS, False)],
)
def test_operators_hear_of_renewal_failures_only_when_they_are_on_our_side(
    store: Store, failure: FailureClass, operators_told: bool
) -> None:
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test"])
    notifier = Notifier.from_settings(SETTINGS, Clock())
    notification = emit(
        store, notifier, NotificationKind.RENEWAL_FAILED, domain_id, {"failure": failure}
    )
    assert notification is not None
    told = targets(store, notification.id)
    assert ("email", "a@alpha.test") in told
    assert (("email", "noc@platform.test") in told) is operators_told


def test_renewal_failures_are_told_at_most_once_a_day(store: Store) -> None:
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test"])
    clock = Clock()
    notifier = Notifier.from_settings(SETTINGS, clock)

    assert emit(store, notifier, NotificationKind.RENEWAL_FAILED, domain_id) is not None
    clock.advance(minutes=10)
    assert emit(store, notifier, NotificationKind.RENEWAL_FAILED, domain_id) is None
    clock.advance(days=1)
    assert emit(store, notifier, NotificationKind.RENEWAL_FAILED, domain_id) is not None
    with store.session() as session:
        assert len(session.scalars(select(Notification)).all()) == 2
        # Only the recorded ones have deliveries: 2 x (one email + two webhooks).
        assert len(session.scalars(select(Delivery)).all()) == 6


def test_a_rolled_back_change_leaves_no_alert(store: Store) -> None:
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test"])
    notifier = Notifier.from_settings(SETTINGS, Clock())

    class Crash(Exception):
        pass

    with pytest.raises(Crash), store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        domain.cert_state = "active"
        notifier.emit(session, NotificationKind.SECURED, domain, message="Secured.")
        raise Crash

    with store.session() as session:
        assert session.scalars(select(Notification)).all() == []
        assert session.scalars(select(Delivery)).all() == []


def test_brand_requests_go_to_the_deliverability_team(store: Store) -> None:
    settings = SETTINGS.model_copy(update={"deliverability_email": "deliver@platform.test"})
    domain_id = add_customer(store, "brandco", "links.brand.test", ["c@brand.test"], brand=True)
    notifier = Notifier.from_settings(settings, Clock())

    request = emit(store, notifier, NotificationKind.BRAND_REQUESTED, domain_id)
    assert request is not None
    emails = {t for c, t in targets(store, request.id) if c == "email"}
    assert emails == {"deliver@platform.test"}

    # Whatever a brand domain's customer hears, the team that runs it hears too.
    secured = emit(store, notifier, NotificationKind.SECURED, domain_id)
    assert secured is not None
    emails = {t for c, t in targets(store, secured.id) if c == "email"}
    assert emails == {"c@brand.test", "deliver@platform.test"}


def test_without_smtp_only_webhooks_are_written(store: Store) -> None:
    settings = SETTINGS.model_copy(update={"smtp_host": None})
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test"])
    notification = emit(
        store, Notifier.from_settings(settings, Clock()), NotificationKind.MOVED, domain_id
    )
    assert notification is not None
    assert {c for c, _ in targets(store, notification.id)} == {"webhook"}


def test_the_same_address_is_written_once(store: Store) -> None:
    settings = SETTINGS.model_copy(update={"operator_email": "A@alpha.test"})
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["a@alpha.test"])
    notification = emit(
        store, Notifier.from_settings(settings, Clock()), NotificationKind.REVOKED, domain_id
    )
    assert notification is not None
    assert [t for c, t in targets(store, notification.id) if c == "email"] == ["a@alpha.test"]


def test_alert_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        Settings(webhook_urls=("https://hooks.platform.test/x",))
    with pytest.raises(ValueError, match="smtp_from"):
        Settings(smtp_host="127.0.0.1")
    with pytest.raises(ValueError, match="not an http"):
        Settings(webhook_urls=("ftp://127.0.0.1/x",), webhook_secret=SecretStr("x"))
    masked = Settings(
        smtp_password=SecretStr("hunter2-smtp"), webhook_secret=SecretStr("hunter2-hook")
    ).masked()
    assert "hunter2" not in repr(masked)


def test_migration_matches_the_model_and_goes_both_ways(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "notifications" in repr(d) or "deliveries" in repr(d)] == []

    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    tables = inspect(store.engine).get_table_names()
    assert "notifications" not in tables and "deliveries" not in tables
    store.migrate()
    assert store.schema_is_current()


def test_a_brand_request_for_a_name_without_a_row_yet(store: Store) -> None:
    add_customer(store, "brandco", "links.brandco.test", ["c@brand.test"])
    with store.session() as session:
        account = find_account(session, "brandco")
        notification = emit_for_settings(
            session,
            NotificationKind.BRAND_REQUESTED,
            "links.brand-new.test",
            message="Requested from the account page.",
            details={"requested_by": "c@brand.test"},
            settings=SETTINGS,
            account=account,
        )
        assert notification is not None
        assert notification.domain_id is None and notification.account_name == "brandco"
        notification_id = notification.id
    emails = {t for c, t in targets(store, notification_id) if c == "email"}
    assert emails == {"noc@platform.test"}  # no deliverability_email: the operators
