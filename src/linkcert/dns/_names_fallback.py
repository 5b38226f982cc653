"""TEMPORARY, remove at merge: stands in for `linkcert.names.validate` until that lands.

Only lowercases, drops one trailing dot and encodes to IDNA; the real rules live in names.py.
"""

from __future__ import annotations

import idna

from linkcert.names import DomainName, DomainNameError


def minimal_normalize(name: str) -> DomainName:
    text = name.strip().lower().removesuffix(".")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        message = f"{name!r} is not a valid domain name: {error}"
        raise DomainNameError("invalid_name", message) from error
    return DomainName(ascii=ascii_name, unicode=idna.decode(ascii_name), registrable=ascii_name)
