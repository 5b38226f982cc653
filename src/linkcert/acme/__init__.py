"""The ACME protocol client: accounts, orders, HTTP-01 challenges, issuance, revocation.

It keeps no state of its own beyond one process: the worker stores every result (account URI,
order, challenges) and can resume from any of them after a restart.
"""

from linkcert.acme.account_key import AccountKey, AccountKeyKind
from linkcert.acme.certs import (
    ChainError,
    ChainInfo,
    ari_certificate_id,
    make_csr,
    parse_chain,
    verify_chain,
)
from linkcert.acme.client import AcmeClient
from linkcert.acme.errors import (
    AcmeError,
    AcmeRateLimited,
    AcmeRejected,
    AcmeTimeout,
    AcmeUnavailable,
    ChallengeFailed,
    OrderInvalid,
)
from linkcert.acme.orders import AcmeStatus, Http01Challenge, OrderInfo, RenewalWindow
from linkcert.acme.revocation import RevocationReason
from linkcert.acme.settings import (
    LETS_ENCRYPT_DIRECTORY,
    LETS_ENCRYPT_STAGING_DIRECTORY,
    AcmeSettings,
)

__all__ = [
    "LETS_ENCRYPT_DIRECTORY",
    "LETS_ENCRYPT_STAGING_DIRECTORY",
    "AccountKey",
    "AccountKeyKind",
    "AcmeClient",
    "AcmeError",
    "AcmeRateLimited",
    "AcmeRejected",
    "AcmeSettings",
    "AcmeStatus",
    "AcmeTimeout",
    "AcmeUnavailable",
    "ChainError",
    "ChainInfo",
    "ChallengeFailed",
    "Http01Challenge",
    "OrderInfo",
    "OrderInvalid",
    "RenewalWindow",
    "RevocationReason",
    "ari_certificate_id",
    "make_csr",
    "parse_chain",
    "verify_chain",
]
