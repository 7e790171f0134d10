"""The opaque page cursor: the sort key of the last row sent, signed together with a hash
of the query it belongs to and the caller it was issued to.

Signed with ``django.core.signing`` (the ``SECRET_KEY``), so a client can neither read a
position out of it that it was not given nor forge one; the query hash makes a cursor
useless with other filters, times, projects or order; the caller binding makes it useless
to anyone else. The scope is applied to every page anyway, so a replayed cursor could
never widen access; it is refused (400) so the mistake is visible.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing

from analytics.canonical import canonical
from analytics.requests_log.queries import Position

SALT = "budmetrics.requests_log.cursor.v1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CursorError(ValueError):
    """The cursor is malformed, tampered with, or belongs to another query or caller."""


def caller_of(principal: Any) -> str:
    """A stable identity of the caller: the API client's or the user's primary key."""
    pk = str(principal.pk)
    return pk if pk.startswith("api_client:") else f"user:{pk}"


def query_hash(material: dict[str, Any]) -> str:
    """The canonical form of what a page asks (everything except the position and limit)."""
    text = json.dumps(canonical(material), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def encode_cursor(position: Position, query: str, caller: str) -> str:
    millis = (position.timestamp - EPOCH) // timedelta(milliseconds=1)
    payload = {"t": millis, "i": str(position.request_id), "q": query, "c": caller}
    return signing.dumps(payload, salt=SALT, compress=True)


def decode_cursor(token: str, query: str, caller: str) -> Position:
    try:
        payload = signing.loads(token, salt=SALT)
        millis, request_id = int(payload["t"]), uuid.UUID(str(payload["i"]))
        cursor_query, cursor_caller = payload["q"], payload["c"]
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise CursorError(
            "Not a valid cursor (malformed or altered); start again without it."
        ) from exc
    if cursor_caller != caller:
        raise CursorError("This cursor was issued to another caller.")
    if cursor_query != query:
        raise CursorError(
            "This cursor belongs to a different query: keep every other parameter as in "
            "the `next` link."
        )
    return Position(EPOCH + timedelta(milliseconds=millis), request_id)
