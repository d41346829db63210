"""Checking a webhook request on the receiving side: ``verify(headers, body, secret)``.

Engram signs each request the Standard Webhooks way: ``webhook-signature`` is
``v1,<base64 HMAC-SHA256>`` of ``"{webhook-id}.{webhook-timestamp}.{body}"`` under the endpoint's
``whsec_…`` secret. The checking itself is the ``standardwebhooks`` package's; this module gives
it one call and errors that say what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from engram_client.errors import WebhookVerificationError

TOLERANCE_SECONDS = 300  # standardwebhooks refuses a webhook-timestamp further than this from now

_REASONS = {
    "Missing required headers": "a webhook-id, webhook-timestamp or webhook-signature header is missing",
    "Invalid Signature Headers": "the webhook-timestamp header is not a Unix time",
    "Message timestamp too old": f"the webhook-timestamp is more than {TOLERANCE_SECONDS} s old "
                                 "(a replayed request, or a clock far off)",
    "Message timestamp too new": f"the webhook-timestamp is more than {TOLERANCE_SECONDS} s in the future "
                                 "(a clock far off)",
    "No matching signature found": "no signature matches: the secret is not this endpoint's, or the body was "
                                   "changed (verify the raw bytes received, not re-serialized JSON)",
}


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

    The same delivery may arrive more than once (its retries share one ``webhook-id``): act on each
    ``webhook-id`` once.
    """
    from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
    from standardwebhooks.webhooks import WebhookVerificationError as Refused

    try:
        hook = Webhook(secret)
    except (EmptyWebhookSecretError, ValueError):  # binascii.Error is a ValueError
        raise ValueError("the webhook secret must be the endpoint's `whsec_…` secret (base64)") from None
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise WebhookVerificationError("the body is not UTF-8: it was not sent by Engram") from None
    try:
        hook.verify(text, {str(k): str(v) for k, v in headers.items()}, json_parse=False)
    except Refused as exc:
        raise WebhookVerificationError(_REASONS.get(str(exc), str(exc))) from None
    except ValueError:  # a signature without "v1,", or not base64 (binascii.Error)
        raise WebhookVerificationError("the webhook-signature header is malformed") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is signed but not a JSON object")
    return payload
