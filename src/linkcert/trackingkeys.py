"""The `tracking_keys` setting's entries, checked: `ID:SECRET`, the first one minting.

Parsing only, so that the settings can check the value at start-up without loading the
tracking package; the keys themselves are made in `linkcert.tracking.tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_KEY_ID = 255
MIN_SECRET_CHARS = 32


def parse_key_entries(entries: Sequence[str]) -> list[tuple[int, str]]:
    """`["ID:SECRET", ...]` as the `tracking_keys` setting holds them, checked; the message of
    the ValueError names the entry by its position and id, never the secret."""
    parsed: list[tuple[int, str]] = []
    seen: set[int] = set()
    for position, entry in enumerate(entries, 1):
        key_id_text, colon, secret = entry.partition(":")
        key_id_text = key_id_text.strip()
        if not colon or not key_id_text.isdigit() or not 0 <= int(key_id_text) <= MAX_KEY_ID:
            raise ValueError(
                f"entry {position} must be ID:SECRET with an ID from 0 to {MAX_KEY_ID}, "
                "the first entry minting, e.g. 2:<new secret>,1:<previous secret>"
            )
        key_id = int(key_id_text)
        if key_id in seen:
            raise ValueError(f"entry {position}: key id {key_id} is listed twice")
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"entry {position} (key id {key_id}): the secret must be at least "
                f"{MIN_SECRET_CHARS} characters long"
            )
        seen.add(key_id)
        parsed.append((key_id, secret))
    return parsed
