"""The one ACME account linkcert uses for every customer, per CA directory.

Its key is generated and stored (encrypted) before the account is registered, so a crash in
between registers the same key again, which the CA answers with the existing account instead
of creating a second one.
"""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from linkcert.acme import AcmeClient, AcmeSettings
from linkcert.acme.account_key import AccountKey
from linkcert.acme.errors import AcmeRejected
from linkcert.config import Settings
from linkcert.keys import MasterKeys
from linkcert.keystore import account_key_context
from linkcert.store import AcmeAccount, Store, utcnow


class ProfileError(AcmeRejected):
    """The configured certificate profile is not one the CA offers."""


def acme_settings(settings: Settings) -> AcmeSettings:
    eab_key = settings.acme_eab_hmac_key.get_secret_value() if settings.acme_eab_hmac_key else None
    return AcmeSettings(
        directory_url=settings.acme_directory_url,
        ca_bundle=settings.acme_ca_bundle,
        contact_email=settings.acme_contact_email,
        eab_kid=settings.acme_eab_kid,
        eab_hmac_key=eab_key,
    )


class AccountProvider:
    """Loads (or creates and registers) the account on first use, then keeps the client."""

    def __init__(self, store: Store, keys: MasterKeys, settings: Settings) -> None:
        self.store = store
        self.keys = keys
        self.settings = acme_settings(settings)
        self.profile = settings.acme_profile
        self._profile_checked = False
        self._lock = threading.Lock()
        self._client: AcmeClient | None = None
        self._account_id: int | None = None

    @property
    def account_uri(self) -> str | None:
        return self._client.account_uri if self._client is not None else None

    def get(self) -> tuple[AcmeClient, int]:
        """The client and the account's row id; registers the account if need be."""
        with self._lock:
            if self._client is None or self._account_id is None:
                self._client, self._account_id = self._load_or_create()
            if not self._profile_checked:
                self._check_profile(self._client)
                self._profile_checked = True
            if self._client.account_uri is None:
                uri = self._client.register()
                self._save_uri(self._account_id, uri)
            return self._client, self._account_id

    def _check_profile(self, client: AcmeClient) -> None:
        """An unknown profile is a configuration error, said once, before any order."""
        if self.profile is None:
            return
        offered = client.profiles()
        if self.profile not in offered:
            choices = ", ".join(sorted(offered)) or "none (the CA has no profiles)"
            raise ProfileError(
                f"acme_profile (LINKCERT_ACME_PROFILE): the CA does not offer the profile "
                f"{self.profile!r}; it offers {choices}"
            )

    def _load_or_create(self) -> tuple[AcmeClient, int]:
        directory = self.settings.directory_url
        context = account_key_context(directory)
        row = self._find(directory)
        if row is None:
            key = AccountKey.generate()
            try:
                with self.store.session() as session:
                    session.add(
                        AcmeAccount(
                            directory_url=directory,
                            key_encrypted=self.keys.encrypt(key.to_pem(), context),
                            contact=self.settings.contact_email,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                pass  # another worker created it first: use theirs
            row = self._find(directory)
            assert row is not None
        key = AccountKey.from_pem(self.keys.decrypt(row.key_encrypted, context))
        return AcmeClient(self.settings, key, row.uri), row.id

    def _find(self, directory: str) -> AcmeAccount | None:
        with self.store.session() as session:
            return session.scalar(select(AcmeAccount).where(AcmeAccount.directory_url == directory))

    def _save_uri(self, account_id: int, uri: str) -> None:
        with self.store.session() as session:
            row = session.get(AcmeAccount, account_id)
            if row is not None:
                row.uri = uri
