"""What the pages say about a domain in each situation: headline, states, fixes, next step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from linkcert.domains import DomainStatus
from linkcert.states import relative_time
from linkcert.web.session import same_origin
from linkcert.web.views import TextPart, record_parts, status_view

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

BASE = DomainStatus(
    domain="links.shop.test",
    unicode_name="links.shop.test",
    account="shop",
    dns_state="pending",
    cert_state="none",
    problems=[],
    issuer=None,
    not_before=None,
    not_after=None,
    next_attempt_at=NOW,
    failure_class=None,
    wanted=True,
)
SECURED = replace(
    BASE,
    dns_state="ok",
    cert_state="active",
    issuer="R11",
    not_before=NOW - timedelta(days=10),
    not_after=NOW + timedelta(days=80),
    next_attempt_at=NOW + timedelta(hours=6),
    renew_at=NOW + timedelta(days=49),
    renewal_basis="lifetime",
)


@pytest.mark.parametrize(
    ("status", "headline", "tone"),
    [
        (BASE, "Checking your DNS", "working"),
        (replace(BASE, dns_state="points_elsewhere"), "Action needed", "action"),
        (replace(BASE, dns_state="caa_blocked"), "Action needed", "action"),
        (replace(BASE, dns_state="dns_error"), "did not answer properly", "error"),
        (replace(BASE, dns_state="ok", cert_state="pending_validation"), "Getting your", "working"),
        (replace(BASE, dns_state="ok", cert_state="failed"), "failed. We retry", "error"),
        (SECURED, "HTTPS is on", "ok"),
        (replace(SECURED, dns_state="moved"), "no longer points to us", "action"),
        (
            replace(SECURED, dns_state="caa_blocked"),
            "so that the certificate can be renewed",
            "action",
        ),
        (replace(SECURED, cert_state="expiring"), "renewal is failing", "action"),
        (replace(SECURED, cert_state="expired"), "no longer valid", "error"),
        (replace(SECURED, wanted=False), "No longer in use", "neutral"),
    ],
)
def test_headlines(status: DomainStatus, headline: str, tone: str) -> None:
    view = status_view(status, NOW)
    assert headline in view.headline
    assert view.tone == tone


def test_dns_and_certificate_are_shown_apart_in_words() -> None:
    view = status_view(replace(SECURED, dns_state="moved"), NOW)
    assert view.dns_text == "The domain no longer points to us"
    assert view.cert_text == "Secured"
    assert view.summary == (
        "links.shop.test: DNS: The domain no longer points to us. Certificate: Secured."
    )


def test_a_secured_domain_shows_issuer_expiry_and_next_renewal() -> None:
    view = status_view(SECURED, NOW)
    facts = {fact.label: fact for fact in view.facts}
    assert facts["Issued by"].value == "R11"
    expires = facts["Expires"].when
    assert expires is not None and expires.relative == "in 80 days"
    renewal = facts["Next renewal"]
    assert renewal.value == "Automatic" and renewal.when is not None
    assert renewal.when.at == SECURED.renew_at  # the worker's stored plan
    assert view.settled


def test_the_next_renewal_is_the_stored_plan_even_where_the_lifetime_rule_differs() -> None:
    # With ARI the CA may suggest renewing long before (or after) a third of the lifetime.
    planned = NOW + timedelta(days=3)
    view = status_view(replace(SECURED, renew_at=planned, renewal_basis="ari"), NOW)
    renewal = {fact.label: fact for fact in view.facts}["Next renewal"]
    assert renewal.value == "Automatic, when the CA suggests"
    assert renewal.when is not None and renewal.when.at == planned


def test_uploaded_certificates_say_what_happens_if_renewal_fails() -> None:
    view = status_view(SECURED, NOW, source="upload")
    labels = [fact.label for fact in view.facts]
    assert "If that fails" in labels
    assert view.facts[0].value == "R11 (uploaded certificate)"


def test_failures_show_when_the_next_try_is_and_what_to_do() -> None:
    failed = replace(
        BASE,
        dns_state="ok",
        cert_state="failed",
        failure_class="challenge_failed",
        next_attempt_at=NOW + timedelta(minutes=10),
        problems=[{"code": "challenge_failed", "message": "The CA could not reach us", "fix": ""}],
    )
    view = status_view(failed, NOW)
    assert [f.label for f in view.facts] == ["Next retry"]
    assert view.facts[0].when is not None and view.facts[0].when.relative == "in 10 minutes"
    fix = "".join(part.text for part in view.problems[0].fix)
    assert "proxy or CDN" in fix
    assert not view.settled
    dns = replace(BASE, dns_state="points_elsewhere", failure_class="dns_not_ready")
    assert [f.label for f in status_view(dns, NOW).facts] == ["Next DNS check"]


def test_records_in_fixes_stand_apart() -> None:
    fix = 'Add this record: shop.test. CAA 0 issue "letsencrypt.org" (CAA records add up).'
    assert record_parts(fix) == [
        TextPart("Add this record: "),
        TextPart('shop.test. CAA 0 issue "letsencrypt.org"', record=True),
        TextPart(" (CAA records add up)."),
    ]
    cname = "At your DNS provider, add this record: links.shop.test. CNAME edge.platform.test."
    assert record_parts(cname)[1] == TextPart(
        "links.shop.test. CNAME edge.platform.test.", record=True
    )
    assert record_parts("Nothing to do.") == [TextPart("Nothing to do.")]


def test_relative_times() -> None:
    assert relative_time(NOW + timedelta(seconds=3), NOW) == "now"
    assert relative_time(NOW + timedelta(minutes=1, seconds=5), NOW) == "in 1 minute"
    assert relative_time(NOW - timedelta(hours=5), NOW) == "5 hours ago"
    assert relative_time(NOW + timedelta(days=2, hours=3), NOW) == "in 2 days"


def _request(**headers: str) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"host", b"127.0.0.1:8080"))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": raw,
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "query_string": b"",
    }
    return Request(scope)


def test_same_origin_reads_what_browsers_send() -> None:
    assert same_origin(_request())  # not a browser: the CSRF token decides
    assert same_origin(
        _request(Origin="http://127.0.0.1:8080", **{"Sec-Fetch-Site": "same-origin"})
    )
    assert not same_origin(_request(Origin="https://evil.test"))
    assert not same_origin(_request(Origin="null"))
    assert not same_origin(_request(**{"Sec-Fetch-Site": "cross-site"}))
    assert not same_origin(_request(**{"Sec-Fetch-Site": "same-site"}))
