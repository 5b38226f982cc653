"""The worker's stored renewal plan is part of a domain's status: page, API and CLI agree.

The plan is set here as the worker sets it with ACME Renewal Information: a time the CA
suggested, far from where the lifetime rule (a third of the lifetime left) would put it, so
that a place still recomputing the window instead of reading the plan would show.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from linkcert.certificates import install_certificate
from linkcert.cli import app
from linkcert.domains import domain_status
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.renewal import renewal_window
from linkcert.store import Domain, Store
from linkcert.uploads import check_upload, store_upload
from linkcert.web import create_app
from tests.api_support import SETTINGS, World, bearer, client
from tests.certs_support import ThrowawayCA
from tests.web_support import SCRIPT, browser, log_in

DOMAIN = "links.alpha.test"
KEYS = MasterKeys.parse(generate_master_key("plan"))


def secure_with_ari_plan(store: Store) -> datetime:
    """Install a certificate for alpha's domain with an ARI plan; the planned time."""
    leaf = ThrowawayCA.create().issue(DOMAIN, days=90)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN, private_roots=leaf.roots)
    planned = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == DOMAIN)).one()
        certificate = store_upload(session, KEYS, domain, checked)
        certificate.source = "acme"
        certificate.renew_at = planned
        certificate.ari_next_check_at = datetime.now(UTC) + timedelta(hours=6)
        install_certificate(
            session, domain, certificate, notifier=None, event="secured", message=""
        )
        domain.dns_state = "ok"
        earliest, latest = renewal_window(certificate.not_before, certificate.not_after)
    assert not earliest <= planned <= latest  # the lifetime rule would say otherwise
    return planned


def same_instant(text: str | None, expected: datetime) -> bool:
    assert text is not None
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)) == expected


async def test_page_api_and_cli_show_the_stored_plan(world: World) -> None:
    planned = secure_with_ari_plan(world.store)

    status = domain_status(world.store, DOMAIN)
    assert status.renew_at == planned and status.renewal_basis == "ari"

    site = create_app(world.store, SETTINGS, rate_limit=None)
    async with client(site) as api:
        response = await api.get(
            f"/api/v1/accounts/{world.a_id}/tracking-domain", headers=bearer(world.a_token)
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert same_instant(body["renew_at"], planned)
    assert body["renewal_basis"] == "ari"

    async with browser(site) as web:
        await log_in(web, world.a_token)
        page = (await web.get("/account/status", headers=SCRIPT)).json()
    html = page["html"]
    assert planned.isoformat() in html
    assert "Automatic, when the CA suggests" in html

    env = {"LINKCERT_DATABASE_URL": world.store.url}
    shown = CliRunner().invoke(app, ["domain", "status", DOMAIN, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert same_instant(json.loads(shown.stdout)["renew_at"], planned)
    text = CliRunner().invoke(app, ["domain", "status", DOMAIN], env=env)
    assert f"Renews:      {planned:%Y-%m-%d %H:%M} UTC  (suggested by the CA)" in text.stdout
