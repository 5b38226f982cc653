"""What can go wrong talking to an ACME CA, sorted by what the caller should do about it.

Every message is plain text fit for an operator's screen: it names the step, the domain when
there is one, and the CA's own explanation, never keys, nonces or signed request bodies.
"""

from __future__ import annotations


class AcmeError(Exception):
    """Base of every error `linkcert.acme` raises.

    `code` is the ACME error type without its `urn:ietf:params:acme:error:` prefix when the CA
    sent one; `retry_after` is the pause in seconds the CA asked for, when it asked for one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.code = code
        self.retry_after = retry_after


class AcmeUnavailable(AcmeError):
    """The CA could not be reached or failed on its side; try the same step again later."""

    retryable = True


class AcmeTimeout(AcmeUnavailable):
    """The CA is still working (validating or issuing); call the same step again later.

    The order stays usable: resume it from its URL.
    """


class AcmeRateLimited(AcmeError):
    """The CA refused because of a rate limit; wait `retry_after` seconds (when given)."""

    retryable = True


class AcmeRejected(AcmeError):
    """The CA refused the request itself; retrying unchanged will fail the same way.

    Usually a configuration problem (account, External Account Binding, CSR) to fix first.
    """


class ChallengeFailed(AcmeError):
    """The CA could not validate the domain; `detail` holds the CA's explanation.

    The order is dead: fix what the detail says (DNS, port 80, the served token) and start a
    new order.
    """

    def __init__(self, message: str, *, domain: str, detail: str | None, code: str | None) -> None:
        super().__init__(message, detail=detail, code=code)
        self.domain = domain


class OrderInvalid(AcmeError):
    """The order can no longer lead to a certificate (invalid or expired); start a new one."""
