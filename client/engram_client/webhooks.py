"""Checking a webhook request on the receiving side: ``verify(headers, body, secret)``.

Engram signs each request the Standard Webhooks way: ``webhook-signature`` is
``v1,<base64 HMAC-SHA256>`` of ``"{webhook-id}.{webhook-timestamp}.{body}"`` under the endpoint's
``whsec_…`` secret. This module checks the headers' shapes, the timestamp and the signature itself,
with errors that say what went wrong; the ``standardwebhooks`` package (what the server signs with)
only computes the expected signature, so no outcome depends on that package's own checks or on the
wording of its errors, which differ between its releases.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from engram_client.errors import WebhookVerificationError

TOLERANCE_SECONDS = 300  # a webhook-timestamp further than this from now is refused (as Standard Webhooks says)

_SECRET_PREFIX = "whsec_"
_SIGNATURE_BYTES = 32  # an HMAC-SHA256
_TIMESTAMP = re.compile(r"-?[0-9]{1,18}")  # whole seconds since the Unix epoch, ASCII digits only
_SIGNATURE = re.compile(r"v1,(.+)")  # one entry of webhook-signature: version "v1", then base64
_REQUIRED = ("webhook-id", "webhook-timestamp", "webhook-signature")


class Headers(Protocol):
    """Anything with ``items()`` of name and value: a dict, Starlette's ``Headers``, ``http.server``'s."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def verify(headers: Headers, body: bytes | str, secret: str) -> dict[str, Any]:
    """Check a webhook request and return its payload, ``{"type", "timestamp", "data"}``.

    ``headers`` are the request's (names in any case), ``body`` its raw bytes exactly as received,
    ``secret`` the endpoint's ``whsec_…`` secret (shown when it was created). Raises
    ``WebhookVerificationError`` (say 400 and ignore the request) when a header is missing or
    malformed, the signature does not match, or the timestamp is more than five minutes from now;
    ``ValueError`` when ``secret`` is not a Standard Webhooks secret.

    The headers must be ``webhook-id`` (not empty), ``webhook-timestamp`` (an integer, Unix seconds)
    and ``webhook-signature`` (one or more space-separated ``v1,<base64 of a 32-byte HMAC-SHA256>``
    entries; the request passes when any of them matches, as while a secret is rotated).

    The same delivery may arrive more than once (its retries share one ``webhook-id``): act on each
    ``webhook-id`` once.
    """
    from standardwebhooks.webhooks import Webhook

    key = _secret_key(secret)
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise WebhookVerificationError("the body is not UTF-8: it was not sent by Engram") from None

    msg_id, timestamp, signatures = _parse_headers(headers)
    age = time.time() - timestamp
    if age > TOLERANCE_SECONDS:
        raise WebhookVerificationError(f"the webhook-timestamp is more than {TOLERANCE_SECONDS} s old "
                                       "(a replayed request, or a clock far off)")
    if age < -TOLERANCE_SECONDS:
        raise WebhookVerificationError(f"the webhook-timestamp is more than {TOLERANCE_SECONDS} s in the future "
                                       "(a clock far off)")

    # "v1,<base64>": the library's signing, as the server's (shared/webhooks/secrets.py::signed_headers).
    expected_entry = Webhook(key).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), text)
    expected = base64.b64decode(expected_entry.partition(",")[2])
    # Every entry is compared (no early exit), so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, signature) for signature in signatures]
    if not any(matches):
        raise WebhookVerificationError("no signature matches: the secret is not this endpoint's, or the body was "
                                       "changed (verify the raw bytes received, not re-serialized JSON)")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is signed but not a JSON object")
    return payload


def _secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix may be left out, as Standard Webhooks allows)."""
    encoded = secret.removeprefix(_SECRET_PREFIX).rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True) if encoded else b""
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError("the webhook secret must be the endpoint's `whsec_…` secret (base64)")
    return key


def _parse_headers(headers: Headers) -> tuple[str, int, list[bytes]]:
    """``webhook-id``, ``webhook-timestamp`` and the decoded ``webhook-signature`` entries, each checked
    for its shape; ``WebhookVerificationError`` names the header that is missing or malformed."""
    values = {str(name).lower(): str(value).strip() for name, value in headers.items()}
    missing = [name for name in _REQUIRED if not values.get(name)]
    if missing:
        which = f"the {missing[0]} header is" if len(missing) == 1 else f"the {' and '.join(missing)} headers are"
        raise WebhookVerificationError(f"{which} missing (or empty): every Engram webhook request has "
                                       "webhook-id, webhook-timestamp and webhook-signature")
    msg_id, raw_timestamp, raw_signatures = (values[name] for name in _REQUIRED)

    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise WebhookVerificationError("the webhook-timestamp header is not a Unix time (an integer number of seconds)")

    entries = raw_signatures.split()
    signatures: list[bytes] = []
    for position, entry in enumerate(entries, start=1):
        where = f"signature {position} of {len(entries)}" if len(entries) > 1 else "its signature"
        shape = _SIGNATURE.fullmatch(entry)
        if shape is None:
            raise WebhookVerificationError(f"the webhook-signature header is malformed: {where} is not "
                                           "`v1,<base64>` (space-separated entries)")
        try:
            signature = base64.b64decode(shape.group(1), validate=True)
        except binascii.Error:
            raise WebhookVerificationError(f"the webhook-signature header is malformed: {where} is not "
                                           "valid base64 after `v1,`") from None
        if len(signature) != _SIGNATURE_BYTES:
            raise WebhookVerificationError(f"the webhook-signature header is malformed: {where} decodes to "
                                           f"{len(signature)} bytes, not the {_SIGNATURE_BYTES} of an HMAC-SHA256")
        signatures.append(signature)
    return msg_id, int(raw_timestamp), signatures
