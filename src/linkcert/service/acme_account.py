"""The ACME account linkcert uses for every customer, one per CA.

Its key is generated and stored (encrypted) before the account is registered, so a crash in
between registers the same key again, which the CA answers with the existing account instead
of creating a second one. Each CA's account is created on first use; a CA that needs External
Account Binding is registered at start, so that wrong credentials stop the process at once.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from linkcert.acme import AcmeClient, AcmeSettings
from linkcert.acme.account_key import AccountKey
from linkcert.acme.errors import AcmeError, AcmeRejected
from linkcert.ca_limits import limits_for
from linkcert.config import AcmeCa, ConfigError, Settings
from linkcert.keys import MasterKeys
from linkcert.keystore import account_key_context
from linkcert.redact import masked_url
from linkcert.store import AcmeAccount, Store, utcnow
from linkcert.worker.issuance import IssuingCa
from linkcert.worker.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class ProfileError(AcmeRejected):
    """The configured certificate profile is not one the CA offers."""


def acme_settings_for(ca: AcmeCa, contact_email: str | None) -> AcmeSettings:
    eab_key = ca.eab_hmac_key.get_secret_value() if ca.eab_hmac_key else None
    return AcmeSettings(
        directory_url=ca.directory_url,
        ca_bundle=ca.ca_bundle,
        contact_email=contact_email,
        eab_kid=ca.eab_kid,
        eab_hmac_key=eab_key,
    )


def acme_settings(settings: Settings) -> AcmeSettings:
    """The client settings of the first (preferred) CA."""
    return acme_settings_for(settings.cas[0], settings.acme_contact_email)


class AccountProvider:
    """Loads (or creates and registers) one CA's account on first use, then keeps the client."""

    def __init__(
        self,
        store: Store,
        keys: MasterKeys,
        ca: AcmeCa,
        contact_email: str | None = None,
        *,
        profile_setting: str = "acme_profile (LINKCERT_ACME_PROFILE)",
    ) -> None:
        self.store = store
        self.profile_setting = profile_setting
        self.keys = keys
        self.ca = ca
        self.settings = acme_settings_for(ca, contact_email)
        self.profile = ca.profile
        self._profile_checked = False
        self._lock = threading.Lock()
        self._client: AcmeClient | None = None
        self._account_id: int | None = None

    @property
    def account_uri(self) -> str | None:
        if self._client is not None:
            return self._client.account_uri
        return None

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

    def load(self) -> None:
        """Read the stored account (if any) without talking to the CA, for its URI."""
        with self._lock:
            if self._client is None and self._find(self.settings.directory_url) is not None:
                self._client, self._account_id = self._load_or_create()

    def _check_profile(self, client: AcmeClient) -> None:
        """An unknown profile is a configuration error, said once, before any order."""
        if self.profile is None:
            return
        offered = client.profiles()
        if self.profile not in offered:
            choices = ", ".join(sorted(offered)) or "none (the CA has no profiles)"
            raise ProfileError(
                f"{self.profile_setting}: {self.ca.name} does not offer the profile "
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


class CaAccounts:
    """Every configured CA's account, in preference order."""

    def __init__(self, store: Store, keys: MasterKeys, settings: Settings) -> None:
        self.settings = settings
        self.providers = [
            AccountProvider(store, keys, ca, settings.acme_contact_email)
            if not settings.acme_cas
            else AccountProvider(
                store,
                keys,
                ca,
                settings.acme_contact_email,
                profile_setting=f"acme_cas[{index}].profile",
            )
            for index, ca in enumerate(settings.cas)
        ]

    @property
    def account_uri(self) -> str | None:
        """The preferred CA's account URI (None until it is known)."""
        return self.providers[0].account_uri

    def account_uris(self) -> dict[str, str | None]:
        """Each CA's account URI by CA name, for CAA `accounturi`."""
        return {provider.ca.name: provider.account_uri for provider in self.providers}

    def issuing_cas(self, store: Store) -> list[IssuingCa]:
        """What the issuer needs of each CA, with the CA's own rate limits."""
        return [
            IssuingCa(
                name=provider.ca.name,
                directory_url=provider.ca.directory_url,
                caa_domains=provider.ca.caa_domains,
                accounts=provider,
                profile=provider.ca.profile,
                rate_limiter=RateLimiter(
                    store,
                    limits_for(provider.ca.directory_url, provider.ca.rate_limits),
                    renewal_reserve=self.settings.acme_renewal_reserve,
                ),
            )
            for provider in self.providers
        ]

    def check_at_start(self) -> None:
        """Load stored accounts; register those of CAs with EAB, so bad credentials show now.

        Wrong credentials raise ConfigError naming the CA. A CA that cannot be reached is left
        for later: its account is then created on first use.
        """
        for index, provider in enumerate(self.providers):
            provider.load()
            if provider.ca.eab_kid is None or provider.account_uri is not None:
                continue
            try:
                provider.get()
            except ProfileError as exc:
                raise ConfigError(exc.message) from None
            except AcmeRejected as exc:
                where = f"acme_cas[{index}]" if self.settings.acme_cas else "acme_eab_kid"
                raise ConfigError(
                    f"{where} ({provider.ca.name}): the CA refused to register linkcert's "
                    f"account with the External Account Binding credentials given: "
                    f"{exc.message}. Check eab_kid and eab_hmac_key against what the CA gave."
                ) from None
            except AcmeError as exc:
                log.warning(
                    "could not register the account at %s yet (%s); trying again on first use",
                    masked_url(provider.ca.directory_url),
                    exc,
                )
