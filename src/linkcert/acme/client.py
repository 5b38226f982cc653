"""An ACME (RFC 8555) client that only speaks the protocol: no storage, no scheduling.

Each method is one step the worker can persist the result of, so that a restart resumes an
order where it stopped: register the account, create (or reload) an order, list the HTTP-01
challenges to publish, answer them, wait for validation, finalize and download the chain.

The client is synchronous (the acme library uses requests) and thread-safe: the worker calls it
through `asyncio.to_thread`, from many threads at once. Each thread gets its own connection and
nonce pool; the directory and the account are shared.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import requests
from acme import challenges, messages
from acme import client as acme_client
from acme import errors as acme_errors
from cryptography import x509
from josepy.errors import DeserializationError
from josepy.interfaces import JSONDeSerializable
from josepy.json_util import field as field_of_json

from linkcert.acme.account_key import AccountKey
from linkcert.acme.certs import ari_certificate_id
from linkcert.acme.errors import (
    AcmeError,
    AcmeRejected,
    AcmeTimeout,
    AcmeUnavailable,
    ChallengeFailed,
    OrderInvalid,
)
from linkcert.acme.failures import problem_code, problem_detail, translate
from linkcert.acme.network import RetryingNetwork
from linkcert.acme.orders import (
    AcmeStatus,
    Dns01Challenge,
    Http01Challenge,
    OrderInfo,
    RenewalWindow,
)
from linkcert.acme.revocation import RevocationReason
from linkcert.acme.settings import AcmeSettings
from linkcert.redact import masked_url

log = logging.getLogger(__name__)

# What the library and requests raise for a failed exchange with the CA; anything else is a
# bug and propagates untouched.
_PROTOCOL_FAILURES = (
    acme_errors.Error,
    requests.exceptions.RequestException,
    DeserializationError,
    ValueError,
    KeyError,
)

_EAB_CHECK = "check eab_kid and eab_hmac_key against the credentials the CA gave"
_EAB_HINTS = {"unauthorized": _EAB_CHECK, "malformed": _EAB_CHECK}

_FINALIZE_HINTS = {
    "badCSR": "the CA refused the certificate request: check the certificate key's type and size",
    "unauthorized": "the CA refused the certificate request for this order",
}

_VALIDATION_HINTS = {
    "connection": "check that the name points at the platform and that port 80 is reachable",
    "dns": "check the name's DNS records",
    "unauthorized": (
        "the CA reached the name but not the expected answer: check that it points at the platform"
    ),
    "incorrectResponse": "check that the name points at the platform",
    "caa": "a CAA record of the name forbids this CA",
    "rejectedIdentifier": "the CA will not issue for this name",
}


@dataclass
class _ThreadSession:
    """What one thread uses to talk to the CA (see the module docstring)."""

    network: RetryingNetwork
    protocol: acme_client.ClientV2 | None = None
    account_uri: str | None = None


class AcmeClient:
    """One ACME account at one CA.

    `account_uri` is the URI `register()` returned before (stored by the caller); without it,
    the first step that needs the account registers it (which finds the existing account when
    the key is already registered).
    """

    def __init__(
        self, settings: AcmeSettings, account_key: AccountKey, account_uri: str | None = None
    ) -> None:
        self.settings = settings
        self._key = account_key
        self._account_uri = account_uri
        self._lock = threading.Lock()
        # Held while registering lazily, so that many threads starting at once make one account
        # request, and while fetching the directory, which every thread then shares.
        self._register_lock = threading.Lock()
        self._directory_lock = threading.Lock()
        self._directory: messages.Directory | None = None
        self._local = threading.local()
        # Weak, so that a network goes (and closes its connections) with the thread it served.
        self._networks: weakref.WeakSet[RetryingNetwork] = weakref.WeakSet()

    @property
    def account_uri(self) -> str | None:
        return self._account_uri

    @property
    def account_key(self) -> AccountKey:
        return self._key

    # -- account -------------------------------------------------------------------------------

    def register(self) -> str:
        """Create the account (terms agreed, contact, EAB when configured) and return its URI.

        A key the CA already knows gets its existing account back, so this is safe to repeat.
        """
        action = "registering the ACME account"
        hints = _EAB_HINTS if self.settings.uses_external_account_binding else None
        with self._step(action, hints) as session:
            protocol = self._protocol(session)
            # newAccount is signed with the key itself, never with an account URI.
            session.network.account = None
            session.account_uri = None
            binding = None
            if self.settings.eab_kid is not None and self.settings.eab_hmac_key is not None:
                binding = messages.ExternalAccountBinding.from_data(
                    account_public_key=self._key.public_jwk,
                    kid=self.settings.eab_kid,
                    hmac_key=self.settings.eab_hmac_key,
                    directory=protocol.directory,
                )
            elif protocol.external_account_required():
                # An existing account can still be found without the binding.
                existing = self._existing_account_uri(session, protocol)
                if existing is None:
                    raise AcmeRejected(
                        f"{action}: the CA requires External Account Binding; set eab_kid and "
                        "eab_hmac_key to the credentials the CA gave",
                        code="externalAccountRequired",
                    )
                return self._remember_account(existing)
            registration = messages.NewRegistration.from_data(
                email=self.settings.contact_email,
                terms_of_service_agreed=True,
                external_account_binding=binding,
            )
            try:
                uri = protocol.new_account(registration).uri
            except acme_errors.ConflictError as existing_account:
                uri = existing_account.location
        log.info("ACME account at %s: %s", masked_url(self.settings.directory_url), uri)
        return self._remember_account(uri)

    def _existing_account_uri(
        self, session: _ThreadSession, protocol: acme_client.ClientV2
    ) -> str | None:
        lookup = messages.NewRegistration(only_return_existing=True)
        try:
            response = self._post(session, protocol.directory["newAccount"], lookup)
        except messages.Error as problem:
            if problem.code == "accountDoesNotExist":
                return None
            raise
        location: str = response.headers["Location"]
        return location

    def _remember_account(self, uri: str) -> str:
        with self._lock:
            self._account_uri = uri
        return uri

    def _require_account(self) -> None:
        if self._account_uri is None:
            with self._register_lock:
                if self._account_uri is None:
                    self.register()

    # -- orders --------------------------------------------------------------------------------

    def new_order(
        self, domain: str, *, profile: str | None = None, replaces: str | None = None
    ) -> OrderInfo:
        """Ask the CA for a certificate for `domain` (ASCII / A-label form).

        `profile` names one of the CA's certificate profiles (e.g. Let's Encrypt's
        "shortlived"); None lets the CA choose. `replaces` is the ARI identifier
        (`certs.ari_certificate_id`) of the certificate this order renews: CAs with ARI exempt
        such renewals from rate limits. It is left out for CAs without ARI.
        """
        domain = _ascii_domain(domain)
        self._require_account()
        with self._step(f"creating an order for {domain}") as session:
            protocol = self._protocol(session)
            request = _NewOrder(
                identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=domain)],
                profile=profile,
                replaces=replaces if _offers(protocol.directory, "renewalInfo") else None,
            )
            response = self._post(session, protocol.directory["newOrder"], request)
            order = _order_info(response.headers["Location"], response)
        log.info("ACME order for %s: %s (%s)", domain, order.url, order.status)
        return order

    def load_order(self, order_url: str) -> OrderInfo:
        """The order as the CA describes it now (to resume after a restart)."""
        self._require_account()
        with self._step(f"loading the order {order_url}") as session:
            return _order_info(order_url, self._post_as_get(session, order_url))

    def http01_challenges(self, order: OrderInfo) -> list[Http01Challenge]:
        """The HTTP-01 challenge of each of the order's authorizations.

        Authorizations the CA has already validated (e.g. reused from an earlier order) are
        listed with `authorization_status` valid and need no answer; one without an HTTP-01
        challenge and still pending raises AcmeRejected.
        """
        found: list[Http01Challenge] = []
        for url, domain, status, challenge in self._challenges(order, challenges.HTTP01):
            found.append(
                Http01Challenge(
                    domain=domain,
                    token=challenge.chall.encode("token"),
                    key_authorization=challenge.chall.key_authorization(self._key.jwk),
                    url=challenge.uri,
                    authorization_url=url,
                    authorization_status=status,
                    status=AcmeStatus(challenge.status.name),
                )
            )
        return found

    def dns01_challenges(self, order: OrderInfo) -> list[Dns01Challenge]:
        """The DNS-01 challenge of each of the order's authorizations (as http01_challenges)."""
        found: list[Dns01Challenge] = []
        for url, domain, status, challenge in self._challenges(order, challenges.DNS01):
            found.append(
                Dns01Challenge(
                    domain=domain,
                    token=challenge.chall.encode("token"),
                    validation=challenge.chall.validation(self._key.jwk),
                    url=challenge.uri,
                    authorization_url=url,
                    authorization_status=status,
                    status=AcmeStatus(challenge.status.name),
                )
            )
        return found

    def _challenges(
        self, order: OrderInfo, kind: type[challenges.KeyAuthorizationChallenge]
    ) -> list[tuple[str, str, AcmeStatus, messages.ChallengeBody]]:
        """Each pending authorization's challenge of `kind`: (url, domain, status, body)."""
        self._require_account()
        found = []
        name = kind.typ
        for url in order.authorization_urls:
            with self._step(f"loading the authorization for {order.domain}") as session:
                authorization = messages.Authorization.from_json(
                    self._post_as_get(session, url).json()
                )
            domain = authorization.identifier.value
            authorization_status = AcmeStatus(authorization.status.name)
            offered = [c for c in authorization.challenges if isinstance(c.chall, kind)]
            if not offered:
                if authorization_status is AcmeStatus.VALID:
                    continue
                raise AcmeRejected(
                    f"the CA offers no {name} challenge for {domain}, the kind linkcert "
                    "chose to answer"
                )
            found.append((url, domain, authorization_status, offered[0]))
        return found

    def answer(self, challenge: Http01Challenge | Dns01Challenge) -> None:
        """Tell the CA the key authorization is published: it starts validating.

        Does nothing for a challenge that needs no answer (already valid or being validated).
        """
        if not challenge.needs_answer:
            return
        self._require_account()
        action = f"asking the CA to validate {challenge.domain}"
        try:
            with self._step(action) as session:
                response: challenges.ChallengeResponse = (
                    challenges.DNS01Response()
                    if isinstance(challenge, Dns01Challenge)
                    else challenges.HTTP01Response()
                )
                self._post(session, challenge.url, response)
        except AcmeRejected:
            # The challenge may have moved on since it was listed (answered before a restart,
            # or validated meanwhile): the CA then refuses the answer, and there is nothing to do.
            with self._step(action) as session:
                current = messages.ChallengeBody.from_json(
                    self._post_as_get(session, challenge.url).json()
                )
            if AcmeStatus(current.status.name) is AcmeStatus.PENDING:
                raise
            return
        log.info("ACME challenge answered for %s", challenge.domain)

    def wait_for_authorizations(self, order: OrderInfo, timeout: float | None = None) -> None:
        """Return once the CA has validated every name of the order.

        Raises ChallengeFailed with the CA's explanation when validation failed, OrderInvalid
        when an authorization expired or was deactivated, AcmeTimeout when validation is still
        going on after `timeout` seconds (default: settings.validation_timeout).
        """
        self._require_account()
        limit = self.settings.validation_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        pauses = 0
        for url in order.authorization_urls:
            while True:
                with self._step(f"checking the validation of {order.domain}") as session:
                    authorization = messages.Authorization.from_json(
                        self._post_as_get(session, url).json()
                    )
                    retry_after = session.network.last_retry_after()
                status = AcmeStatus(authorization.status.name)
                if status is AcmeStatus.VALID:
                    break
                if status is not AcmeStatus.PENDING:
                    raise _authorization_failure(authorization, status)
                self._pause(pauses, retry_after, deadline, f"validation of {order.domain}", limit)
                pauses += 1

    def finalize(self, order: OrderInfo, csr_pem: bytes, timeout: float | None = None) -> str:
        """Finalize the order with `csr_pem` and return the issued chain (PEM, leaf first).

        Picks up wherever the order is: waits for validation if still pending, sends the CSR if
        ready, waits if processing, and only downloads the chain if the order was finalized
        already (e.g. before a restart). Raises ChallengeFailed or OrderInvalid when no
        certificate can come of this order, AcmeTimeout when the CA is still busy after
        `timeout` seconds (default: settings.issuance_timeout).
        """
        csr = _csr_for(order, csr_pem)
        self._require_account()
        limit = self.settings.issuance_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        action = f"finalizing the order for {order.domain}"
        current, retry_after = self._reload(order, action)
        pauses = 0
        while True:
            match current.status:
                case AcmeStatus.VALID if current.certificate_url is not None:
                    return self._download_chain(current)
                case AcmeStatus.READY:
                    sent = self._send_csr(current, csr, action)
                    if sent is not None:
                        current, retry_after = sent
                        continue
                case AcmeStatus.PENDING:
                    remaining = max(0.0, deadline - time.monotonic())
                    self.wait_for_authorizations(current, timeout=remaining)
                    # The CA may take a moment to mark the order ready: look again after a pause.
                    retry_after = None
                case AcmeStatus.INVALID:
                    raise self._order_failure(current)
                case AcmeStatus.PROCESSING | AcmeStatus.VALID:
                    pass  # the CA is issuing: wait and look again
                case _:
                    raise OrderInvalid(
                        f"the order for {order.domain} is {current.status}; start a new order"
                    )
            self._pause(pauses, retry_after, deadline, f"issuance for {order.domain}", limit)
            pauses += 1
            current, retry_after = self._reload(order, action)

    def _reload(self, order: OrderInfo, action: str) -> tuple[OrderInfo, float | None]:
        with self._step(action) as session:
            current = _order_info(order.url, self._post_as_get(session, order.url))
            return current, session.network.last_retry_after()

    def _send_csr(
        self, order: OrderInfo, csr: x509.CertificateSigningRequest, action: str
    ) -> tuple[OrderInfo, float | None] | None:
        """POST the CSR; the order it returns, or None when the CA says it is not ready yet."""
        with self._step(action, _FINALIZE_HINTS) as session:
            try:
                response = self._post(
                    session, order.finalize_url, messages.CertificateRequest(csr=csr)
                )
            except messages.Error as problem:
                # Another thread or an earlier run may have raced us; look again.
                if problem.code == "orderNotReady":
                    return None
                raise
            return _order_info(order.url, response), session.network.last_retry_after()

    def _download_chain(self, order: OrderInfo) -> str:
        assert order.certificate_url is not None
        with self._step(f"downloading the certificate for {order.domain}") as session:
            chain = self._post_as_get(session, order.certificate_url).text
        if "-----BEGIN CERTIFICATE-----" not in chain:
            raise AcmeUnavailable(
                f"downloading the certificate for {order.domain}: the CA sent no PEM "
                "certificate; try again later"
            )
        log.info("ACME certificate issued for %s (order %s)", order.domain, order.url)
        return chain

    def _order_failure(self, order: OrderInfo) -> AcmeError:
        # An order turns invalid when one of its authorizations failed: report that failure,
        # with the CA's explanation, rather than the order's generic state.
        for url in order.authorization_urls:
            with self._step(f"loading the authorization for {order.domain}") as session:
                authorization = messages.Authorization.from_json(
                    self._post_as_get(session, url).json()
                )
            status = AcmeStatus(authorization.status.name)
            if status is not AcmeStatus.VALID:
                return _authorization_failure(authorization, status)
        reason = f": {order.error}" if order.error else ""
        return OrderInvalid(
            f"the CA marked the order for {order.domain} invalid{reason}; start a new order",
            detail=order.error,
        )

    # -- directory -----------------------------------------------------------------------------

    def profiles(self) -> dict[str, str]:
        """The certificate profiles the CA offers (name -> description); empty if none."""
        with self._step("reading the CA's directory") as session:
            meta = self._protocol(session).directory.meta
            offered = getattr(meta, "profiles", None) or {}
            return {str(name): str(text) for name, text in dict(offered).items()}

    def offers_renewal_info(self) -> bool:
        """Whether the CA has ACME Renewal Information (RFC 9773)."""
        with self._step("reading the CA's directory") as session:
            return _offers(self._protocol(session).directory, "renewalInfo")

    # -- renewal information -------------------------------------------------------------------

    def renewal_window(self, cert_pem: str | bytes) -> RenewalWindow | None:
        """The CA's suggested renewal window for a certificate, or None if the CA has no ARI.

        Without ARI, renew when a third of the certificate's lifetime remains.
        """
        certificate_id = ari_certificate_id(cert_pem)
        with self._step("fetching renewal information") as session:
            directory = self._protocol(session).directory
            if not _offers(directory, "renewalInfo"):
                return None
            base = str(directory["renewalInfo"]).rstrip("/")
            response = session.network.get(f"{base}/{certificate_id}")
            document = response.json()
            window = messages.RenewalInfo.from_json(document).suggested_window
            return RenewalWindow(
                start=window.start,
                end=window.end,
                explanation_url=document.get("explanationURL"),
                check_again_after=session.network.last_retry_after(),
            )

    # -- revocation ----------------------------------------------------------------------------

    def revoke(
        self,
        cert_pem: str | bytes,
        reason: RevocationReason = RevocationReason.CESSATION_OF_OPERATION,
    ) -> None:
        """Revoke a certificate this account obtained (the leaf of `cert_pem`).

        A certificate already revoked counts as done, so a delete can be retried safely.
        """
        data = cert_pem.encode("ascii") if isinstance(cert_pem, str) else cert_pem
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise ValueError("cert_pem is not a PEM certificate") from None
        self._require_account()
        serial = format(certificate.serial_number, "x")
        with self._step(f"revoking the certificate {serial}") as session:
            try:
                self._protocol(session).revoke(certificate, int(reason))
            except messages.Error as problem:
                if problem.code != "alreadyRevoked":
                    raise
        log.info("ACME certificate %s revoked (reason %d)", serial, int(reason))

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections of every thread that used this client."""
        with self._lock:
            networks = list(self._networks)
        for network in networks:
            network.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AcmeClient({masked_url(self.settings.directory_url)}, account={self._account_uri})"

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _step(
        self, action: str, hints: Mapping[str, str] | None = None
    ) -> Iterator[_ThreadSession]:
        """Run one protocol step, turning library and network failures into AcmeErrors."""
        session = self._thread_session()
        try:
            yield session
        except AcmeError:
            raise
        except _PROTOCOL_FAILURES as error:
            url = self.settings.directory_url
            raise translate(error, action, session.network, url, hints) from error

    def _thread_session(self) -> _ThreadSession:
        session: _ThreadSession | None = getattr(self._local, "session", None)
        if session is None:
            network = RetryingNetwork(self._key.jwk, self._key.algorithm, self.settings)
            with self._lock:
                self._networks.add(network)
            session = _ThreadSession(network)
            self._local.session = session
        return session

    def _protocol(self, session: _ThreadSession) -> acme_client.ClientV2:
        """The thread's library client, signing with the account URI as it is now."""
        if session.protocol is None:
            session.protocol = acme_client.ClientV2(self._load_directory(session), session.network)
        account_uri = self._account_uri
        if session.account_uri != account_uri:
            session.network.account = (
                messages.RegistrationResource(uri=account_uri, body=messages.Registration())
                if account_uri is not None
                else None
            )
            session.account_uri = account_uri
        return session.protocol

    def _load_directory(self, session: _ThreadSession) -> messages.Directory:
        with self._directory_lock:
            if self._directory is None:
                self._directory = acme_client.ClientV2.get_directory(
                    self.settings.directory_url, session.network
                )
            return self._directory

    def _post(
        self, session: _ThreadSession, url: str, body: JSONDeSerializable | None
    ) -> requests.Response:
        protocol = self._protocol(session)
        return session.network.post(url, body, new_nonce_url=protocol.directory["newNonce"])

    def _post_as_get(self, session: _ThreadSession, url: str) -> requests.Response:
        return self._post(session, url, None)

    def _pause(
        self,
        pauses: int,
        retry_after: float | None,
        deadline: float,
        waiting_for: str,
        limit: float,
    ) -> None:
        """Sleep until the next poll (the `pauses`-th of this wait, counted from 0), or raise
        AcmeTimeout once `deadline` has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AcmeTimeout(
                f"{waiting_for} is not finished after {limit:g} s; try the same step again later",
                retry_after=retry_after,
            )
        time.sleep(min(self.settings.poll_pause(pauses, retry_after), remaining))


class _NewOrder(messages.NewOrder):
    """A newOrder request that can name the certificate it replaces (RFC 9773 section 5)."""

    replaces: str | None = field_of_json("replaces", omitempty=True)


def _offers(directory: messages.Directory, resource: str) -> bool:
    try:
        directory[resource]
    except KeyError:
        return False
    return True


def _ascii_domain(domain: str) -> str:
    name = domain.strip().rstrip(".").lower()
    if not name or not name.isascii():
        raise ValueError(
            f"{domain!r} is not a domain name in ASCII (A-label) form; "
            "normalize it with linkcert.names first"
        )
    return name


def _csr_for(order: OrderInfo, csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse the CSR and check it asks for exactly the order's names (a CA refuses otherwise)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ValueError("csr_pem is not a PEM certificate signing request") from None
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = {name.lower() for name in extension.value.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    if names != set(order.identifiers):
        raise ValueError(
            f"the CSR is for {', '.join(sorted(names)) or 'no name'}, the order for "
            f"{', '.join(order.identifiers)}: make the CSR for the order's name"
        )
    return csr


def _order_info(url: str, response: requests.Response) -> OrderInfo:
    body = messages.Order.from_json(response.json())
    return OrderInfo(
        url=url,
        status=AcmeStatus(body.status.name),
        identifiers=tuple(identifier.value for identifier in body.identifiers),
        authorization_urls=tuple(body.authorizations),
        finalize_url=body.finalize,
        certificate_url=body.certificate,
        expires=body.expires,
        error=problem_detail(body.error) if body.error is not None else None,
    )


def _authorization_failure(
    authorization: messages.Authorization, status: AcmeStatus
) -> ChallengeFailed | OrderInvalid:
    domain = authorization.identifier.value
    if status is not AcmeStatus.INVALID:
        return OrderInvalid(f"the authorization for {domain} is {status}; start a new order")
    problems = [c.error for c in authorization.challenges if c.error is not None]
    if not problems:
        return ChallengeFailed(
            f"validation of {domain} failed and the CA gave no reason; start a new order",
            domain=domain,
            detail=None,
            code=None,
        )
    problem = problems[0]
    detail = problem_detail(problem)
    code = problem_code(problem)
    hint = _VALIDATION_HINTS.get(code, "fix the cause, then start a new order")
    return ChallengeFailed(
        f"validation of {domain} failed: {detail} ({hint})", domain=domain, detail=detail, code=code
    )
