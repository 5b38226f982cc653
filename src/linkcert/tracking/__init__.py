"""Tracked links: signed tokens that carry a link's destination, and click recording."""

from linkcert.tracking.clicks import Click, ClickRecorder, ClickRecorderStats, ClickSink
from linkcert.tracking.tokens import (
    MAX_DESTINATION_CHARS,
    MAX_LINK_ID,
    MAX_TOKEN_CHARS,
    InvalidDestination,
    InvalidToken,
    TrackedKind,
    TrackedLink,
    check_destination,
    make_token,
    read_token,
    tracked_url,
    tracking_key_from_secret,
)

__all__ = [
    "MAX_DESTINATION_CHARS",
    "MAX_LINK_ID",
    "MAX_TOKEN_CHARS",
    "Click",
    "ClickRecorder",
    "ClickRecorderStats",
    "ClickSink",
    "InvalidDestination",
    "InvalidToken",
    "TrackedKind",
    "TrackedLink",
    "check_destination",
    "make_token",
    "read_token",
    "tracked_url",
    "tracking_key_from_secret",
]
