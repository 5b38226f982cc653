"""`linkcert brand list|approve|reject|upload` and `linkcert domain retry`: output, JSON, and
exit codes (0 done, 1 refused for the state things are in, 2 wrong input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from linkcert.brand import brand_request, request_brand_domain
from linkcert.cli import app
from linkcert.domains import create_account, domain_status, remove_tracking_domain
from linkcert.domains import set_tracking_domain as save
from linkcert.keys import generate_master_key
from linkcert.names import NamePolicy
from linkcert.store import Store
from tests.certs_support import ThrowawayCA, pem
from tests.ownership_support import prove

POLICY = NamePolicy(allow_test_domains=True)
MASTER = generate_master_key("cli")


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


def run(
    store: Store, *args: str, master: str | None = MASTER, bundle: Path | None = None
) -> Result:
    env = {"LINKCERT_DATABASE_URL": store.url}
    if master:
        env["LINKCERT_MASTER_KEY"] = master
    if bundle is not None:  # the brand's private CA root (upload_ca_bundle)
        env["LINKCERT_UPLOAD_CA_BUNDLE"] = str(bundle)
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def queue(store: Store) -> list[int]:
    shop = create_account(store, "shop")
    other = create_account(store, "other")
    first = request_brand_domain(store, shop.id, "links.brand.test", "spring", POLICY)
    second = request_brand_domain(store, other.id, "links.other-brand.test", "", POLICY)
    return [first.id, second.id]


def test_list_shows_the_queue(store: Store, queue: list[int]) -> None:
    result = run(store, "brand", "list")
    assert result.exit_code == 0, result.output
    assert "links.brand.test" in result.stdout and "spring" in result.stdout
    as_json = json.loads(run(store, "brand", "list", "--json").stdout)
    assert [item["id"] for item in as_json] == queue
    only = json.loads(run(store, "brand", "list", "--status", "approved", "--json").stdout)
    assert only == []
    assert run(store, "brand", "list", "--status", "nonsense").exit_code == 2


def test_approve_and_reject(store: Store, queue: list[int]) -> None:
    approved = run(store, "brand", "approve", str(queue[0]), "--json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["status"] == "approved"
    assert json.loads(approved.stdout)["decided_by"].startswith("cli")
    assert domain_status(store, "links.brand.test").account == "shop"
    again = run(store, "brand", "approve", str(queue[0]))
    assert again.exit_code == 1 and "cannot be approved" in again.stderr
    rejected = run(store, "brand", "reject", str(queue[1]))
    assert rejected.exit_code == 0 and "rejected" in rejected.stdout
    assert run(store, "brand", "reject", str(queue[1])).exit_code == 1
    missing = run(store, "brand", "approve", "999")
    assert missing.exit_code == 2 and "no brand domain request 999" in missing.stderr


def test_upload(store: Store, queue: list[int], ca: ThrowawayCA, tmp_path: Path) -> None:
    leaf = ca.issue("links.brand.test")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(ca.issue("links.brand.test").key_pem)
    request_id = str(queue[0])
    bundle = tmp_path / "brand-roots.pem"
    bundle.write_bytes(pem(ca.root))

    def upload(*args: str, master: str | None = MASTER) -> Result:
        return run(store, "brand", "upload", *args, master=master, bundle=bundle)

    unusable = upload(request_id, "--cert", str(chain), "--key", str(other_key))
    assert unusable.exit_code == 2 and "does not belong" in unusable.stderr
    unreadable = upload(request_id, "--cert", "/nonexistent", "--key", str(key))
    assert unreadable.exit_code == 2 and "cannot read" in unreadable.stderr
    keyless = upload(request_id, "--cert", str(chain), "--key", str(key), master=None)
    assert keyless.exit_code == 2 and "LINKCERT_MASTER_KEY" in keyless.stderr
    assert brand_request(store, queue[0]).status == "requested"

    done = upload(request_id, "--cert", str(chain), "--key", str(key))
    assert done.exit_code == 0, done.output
    assert "Throwaway Brand CA Issuing" in done.stdout
    assert "private CA: not publicly trusted" in done.stdout  # the root is only in the bundle
    assert domain_status(store, "links.brand.test").cert_state == "active"
    closed = upload(str(queue[1]), "--cert", str(chain), "--key", str(key))
    assert closed.exit_code == 2  # the other request is for another name: not covered


def test_domain_retry(store: Store) -> None:
    shop = create_account(store, "shop")
    save(store, shop.id, "links.shop.test", POLICY)
    prove(store, "links.shop.test")
    result = run(store, "domain", "retry", "LINKS.shop.test", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["domain"] == "links.shop.test"
    assert run(store, "domain", "retry", "links.nowhere.test").exit_code == 2
    remove_tracking_domain(store, shop.id)
    detached = run(store, "domain", "retry", "links.shop.test")
    assert detached.exit_code == 1 and "not being secured any more" in detached.stderr
