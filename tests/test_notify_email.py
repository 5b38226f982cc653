"""Alert emails through a real SMTP server on loopback: recipients, text, login, refusals."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from linkcert.config import Settings
from linkcert.notify import DeliveryRunner, NotificationKind, Notifier
from linkcert.notify.delivery import senders_from_settings
from linkcert.notify.jobs import NotificationView
from linkcert.notify.messages import render_email
from linkcert.states import FailureClass
from linkcert.store import Domain, Store
from linkcert.store.models import Delivery
from tests.notify_support import T0, Clock, SmtpReceiver, add_customer, give_certificate


def record(
    store: Store,
    settings: Settings,
    clock: Clock,
    kind: NotificationKind,
    domain_id: int,
    message: str = "",
    **details: object,
) -> None:
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        Notifier.from_settings(settings, clock).emit(
            session, kind, domain, message=message, details=details
        )


async def deliver(store: Store, settings: Settings, clock: Clock) -> int:
    runner = DeliveryRunner(store, senders_from_settings(settings))
    try:
        return await runner.deliver_due(clock())
    finally:
        await runner.aclose()


async def test_each_contact_gets_their_own_plain_text_mail(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(
        store, "Alpha Shop", "links.alpha.test", ["ops@alpha.test", "cto@alpha.test"]
    )
    give_certificate(store, domain_id, T0, T0 + timedelta(days=90))
    with SmtpReceiver() as smtp:
        settings = smtp.settings(operator_email="noc@platform.test")
        record(store, settings, clock, NotificationKind.SECURED, domain_id, "Secured.")
        assert await deliver(store, settings, clock) == 2

    by_recipient = {mail.recipients[0]: mail for mail in smtp.mails}
    assert sorted(by_recipient) == ["cto@alpha.test", "ops@alpha.test"]
    assert all(len(mail.recipients) == 1 for mail in smtp.mails)  # nobody sees the others
    mail = by_recipient["ops@alpha.test"]
    assert mail.message["Subject"] == "HTTPS is active on links.alpha.test"
    assert mail.message["To"] == "ops@alpha.test"
    assert mail.message["From"] == "linkcert <alerts@platform.test>"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message.get_content_type() == "text/plain"
    body = " ".join(mail.body.split())
    assert "links.alpha.test now has a certificate from Test CA R1" in body
    assert "valid until 2026-05-31 09:30 UTC" in body
    assert "What to do: nothing." in body
    assert "account Alpha Shop" in body
    with store.session() as session:
        rows = session.scalars(select(Delivery)).all()
        assert {(r.status, r.attempts, r.delivered_at) for r in rows} == {("delivered", 1, T0)}


async def test_a_renewal_failure_says_what_to_fix_and_when_we_try_again(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["ops@alpha.test"])
    give_certificate(store, domain_id, T0 - timedelta(days=70), T0 + timedelta(days=20))
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        domain.next_attempt_at = T0 + timedelta(hours=2)
        domain.problems = [
            {
                "code": "cname_points_elsewhere",
                "message": "links.alpha.test points to old.cdn.test, not to us.",
                "fix": "Replace the CNAME record of links.alpha.test with: "
                "links.alpha.test. CNAME track.platform.test.",
            }
        ]
    with SmtpReceiver() as smtp:
        settings = smtp.settings(operator_email="noc@platform.test")
        record(
            store,
            settings,
            clock,
            NotificationKind.RENEWAL_FAILED,
            domain_id,
            "DNS does not point to us.",
            failure=FailureClass.DNS_NOT_READY,
        )
        assert await deliver(store, settings, clock) == 1  # the customer can fix it: no NOC

    (mail,) = smtp.mails
    assert mail.recipients == ["ops@alpha.test"]
    assert mail.message["Subject"] == "Renewing the certificate of links.alpha.test failed"
    body = mail.body
    # The record to copy stays whole on one line.
    assert (
        "  - Replace the CNAME record of links.alpha.test with: "
        "links.alpha.test. CNAME track.platform.test.\n" in body
    )
    flat = " ".join(body.split())
    assert "links.alpha.test points to old.cdn.test, not to us." in flat
    assert "stays valid until 2026-03-22 09:30 UTC" in flat
    assert "tries again automatically on 2026-03-02 11:30 UTC (in 2 hours)" in flat
    assert all(len(line) <= 100 for line in body.splitlines())


async def test_an_expiry_warning_for_a_failure_on_our_side(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["ops@alpha.test"])
    give_certificate(store, domain_id, T0 - timedelta(days=87), T0 + timedelta(days=3))
    with SmtpReceiver() as smtp:
        settings = smtp.settings(operator_email="noc@platform.test")
        record(
            store,
            settings,
            clock,
            NotificationKind.EXPIRING,
            domain_id,
            failure=FailureClass.CA_UNAVAILABLE,
            threshold=1,
        )
        await deliver(store, settings, clock)

    assert sorted(m.recipients[0] for m in smtp.mails) == ["noc@platform.test", "ops@alpha.test"]
    mail = smtp.mails[0]
    assert mail.message["Subject"] == "The certificate of links.alpha.test expires in 3 days"
    flat = " ".join(mail.body.split())
    assert "security warning" in flat
    assert "What to do: nothing on your side." in flat


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_login_works_and_the_password_is_never_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["ops@alpha.test"])
    caplog.set_level(logging.DEBUG, logger="linkcert")
    with SmtpReceiver(login=("linkcert", "smtp-pass-word-42")) as smtp:
        wrong = smtp.settings(smtp_username="linkcert", smtp_password="not-the-password-17")
        record(store, wrong, clock, NotificationKind.MOVED, domain_id, "DNS moved.")
        await deliver(store, wrong, clock)
        with store.session() as session:
            row = session.scalars(select(Delivery)).one()
            assert row.status == "pending" and row.attempts == 1
            assert row.last_error is not None and "535" in row.last_error
            assert "not-the-password-17" not in row.last_error

        right = smtp.settings(smtp_username="linkcert", smtp_password="smtp-pass-word-42")
        clock.advance(minutes=1)
        await deliver(store, right, clock)

    assert smtp.logins == ["linkcert"]
    assert [m.recipients for m in smtp.mails] == [["ops@alpha.test"]]
    assert "smtp-pass-word-42" not in caplog.text and "not-the-password-17" not in caplog.text
    assert "smtp-pass-word-42" not in repr(senders_from_settings(right))


async def test_a_refused_mailbox_is_not_retried(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["gone@alpha.test"])
    with SmtpReceiver() as smtp:
        smtp.refuse.add("gone@alpha.test")
        settings = smtp.settings()
        record(store, settings, clock, NotificationKind.RELEASED, domain_id, "Released.")
        await deliver(store, settings, clock)

    with store.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
        assert row.last_error is not None and "550" in row.last_error


async def test_an_smtp_server_that_is_down_is_retried_later(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", ["ops@alpha.test"])
    receiver = SmtpReceiver()  # made, never started: nothing listens on its port
    settings = receiver.settings()
    record(store, settings, clock, NotificationKind.SECURED, domain_id, "Secured.")
    await deliver(store, settings, clock)
    with store.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert row.status == "pending" and row.attempts == 1
        assert row.next_attempt_at is not None and row.next_attempt_at > T0
        assert row.last_error is not None and "refused" in row.last_error.lower()


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_kind_reads_as_a_complete_message(kind: NotificationKind) -> None:
    # The least a notification can carry: a name without a row, nothing else known.
    view = NotificationView(
        public_id="evt_0",
        kind=kind.value,
        domain="links.alpha.test",
        account_id=None,
        account_name=None,
        message="",
        data={},
        created_at=T0,
    )
    text = render_email(view, T0)
    assert "links.alpha.test" in text.subject
    assert "What to do" in text.body or "What went wrong" in text.body
    assert "Reference: evt_0." in text.body
    assert "None" not in text.body and "{" not in text.body
    assert all(len(line) <= 100 for line in text.body.splitlines())
