"""The delivery log through the API (operators only) and `linkcert deliveries list`."""

from __future__ import annotations

import json

from pydantic import SecretStr
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from linkcert.cli import app as cli_app
from linkcert.config import Settings
from linkcert.notify import NotificationKind, Notifier
from linkcert.store import Domain, Store
from linkcert.store.models import Delivery
from tests.api_support import app_for, bearer, client, make_world
from tests.notify_support import Clock

SETTINGS = Settings(
    smtp_host="127.0.0.1",
    smtp_from="alerts@platform.test",
    webhook_urls=("http://127.0.0.1:9/hook?token=very-secret",),
    webhook_secret=SecretStr("whsec"),
)


def record_for_every_domain(store: Store) -> None:
    notifier = Notifier.from_settings(SETTINGS, Clock())
    with store.session() as session:
        for domain in session.scalars(select(Domain).order_by(Domain.id)).all():
            notifier.emit(session, NotificationKind.SECURED, domain, message="Secured.")
        # One delivery has been through a failed attempt already.
        session.execute(
            update(Delivery)
            .where(Delivery.id == 1)
            .values(attempts=1, last_error="HTTP 503", status="pending")
        )


async def test_operators_read_the_log_newest_first_in_pages(store: Store) -> None:
    world = make_world(store)  # alpha has one contact email, beta none
    record_for_every_domain(store)
    async with client(app_for(world)) as api:
        response = await api.get("/api/v1/deliveries?limit=2", headers=bearer(world.operator))
        assert response.status_code == 200, response.text
        page = response.json()
        assert [item["id"] for item in page["items"]] == [3, 2]
        assert page["next"] == "/api/v1/deliveries?limit=2&before=2"
        item = page["items"][0]
        assert item["channel"] == "webhook" and item["domain"] == "links.beta.test"
        # Webhook URLs are shown without their query, which may carry a token.
        assert item["target"] == "http://127.0.0.1:9/hook?…"
        assert item["type"] == "secured" and item["event_id"].startswith("evt_")

        rest = (await api.get(page["next"], headers=bearer(world.operator))).json()
        assert [item["id"] for item in rest["items"]] == [1]
        assert rest["items"][0]["last_error"] == "HTTP 503"
        assert rest["next"] is None

        emails = await api.get(
            "/api/v1/deliveries?channel=email&domain=links.alpha.test",
            headers=bearer(world.operator),
        )
        assert [i["target"] for i in emails.json()["items"]] == ["ops@alpha.test"]

        refused = await api.get("/api/v1/deliveries", headers=bearer(world.a_token))
        assert refused.status_code == 403
        bad = await api.get("/api/v1/deliveries?status=lost", headers=bearer(world.operator))
        assert bad.status_code == 422


def cli(store: Store, *args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args), env={"LINKCERT_DATABASE_URL": store.url})


def test_the_cli_lists_deliveries(store: Store) -> None:
    make_world(store)
    record_for_every_domain(store)
    result = cli(store, "deliveries", "list", "--json", "--status", "pending")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == [3, 2, 1]
    assert rows[-1]["attempts"] == 1 and rows[-1]["last_error"] == "HTTP 503"

    emails = cli(store, "deliveries", "list", "--json", "--channel", "email")
    assert [row["target"] for row in json.loads(emails.stdout)] == ["ops@alpha.test"]
    table = cli(store, "deliveries", "list")
    assert table.exit_code == 0, table.output
    assert "status" in table.stdout and "secured" in table.stdout

    assert cli(store, "deliveries", "list", "--status", "lost").exit_code == 2
