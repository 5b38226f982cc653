"""`Refused`: the one error type use cases raise when what a person asked cannot be done.

It says why (`message`, a sentence) and, where there is one, what to do (`fix`). Every front
end maps it the same way to its own answer: the API to a problem document with `status` and
`slug` (`https://linkcert.dev/problems/<slug>`), the pages to the message beside the form, the
command line to one line on stderr. Use cases raise it instead of each front end translating
the store's and the checks' own exceptions in its own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Refused(Exception):
    """A request refused for a reason the person can act on."""

    def __init__(
        self,
        status: int,
        slug: str,
        message: str,
        *,
        fix: str | None = None,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status the API answers with: 404, 409, 422, 503
        self.slug = slug
        self.message = message
        self.fix = fix
        self.code = code
        self.extra = dict(extra or {})


def sentence(text: str) -> str:
    """`text` as a sentence: a capital first letter and a full stop."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
