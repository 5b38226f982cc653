"""Master key rotation: every stored key is re-encrypted under the new master key."""

from __future__ import annotations

from sqlalchemy import select

from linkcert.domains import create_account, set_tracking_domain
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.keystore import cert_key_context, check_master_key, rotate_all
from linkcert.names import NamePolicy
from linkcert.store import Certificate, Domain, Store
from linkcert.ticketkeys import current_ticket_key, ensure_ticket_keys
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA

NAME = "links.rotate.test"


def test_rotation_re_encrypts_certificate_and_ticket_keys_once(store: Store) -> None:
    old_text, new_text = generate_master_key("old"), generate_master_key("new")
    old = MasterKeys.parse(old_text)
    account = create_account(store, NAME)
    set_tracking_domain(store, account.id, NAME, NamePolicy(allow_test_domains=True))
    leaf = ThrowawayCA.create("Rotation Test CA").issue(NAME)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == NAME)).one()
        domain.current_certificate_id = store_upload(
            session,
            old,
            domain,
            check_upload(leaf.chain_pem, leaf.key_pem, NAME, private_roots=leaf.roots),
        ).id
    ensure_ticket_keys(store, old)
    ticket_key = current_ticket_key(store, old)

    both = MasterKeys.parse(new_text + "," + old_text)
    assert rotate_all(store, both) == 3  # the certificate's key and two ticket keys
    assert rotate_all(store, both) == 0

    new_only = MasterKeys.parse(new_text)
    check_master_key(store, new_only)
    with store.session() as session:
        blob = session.scalars(select(Certificate.key_encrypted)).one()
    assert blob is not None
    assert b"PRIVATE KEY" in new_only.decrypt(blob, cert_key_context(NAME))
    assert current_ticket_key(store, new_only) == ticket_key
