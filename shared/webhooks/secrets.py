"""Webhook signing secrets: made in the Standard Webhooks form (``whsec_`` + base64), kept in
PostgreSQL only encrypted (Fernet) with ENGRAM_WEBHOOK_SECRETS_KEY, which is not in the database,
and used to sign each request the Standard Webhooks way (standardwebhooks)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

from shared.config import Settings, SettingsError

_DEV_KEY = "engram-dev-mode-webhook-secrets-key"  # only under `engram dev`, where secrets are lifted


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _fernet(settings: Settings) -> Fernet:
    if settings.webhook_secrets_key is not None:
        key = settings.webhook_secrets_key.get_secret_value()
    elif settings.dev_mode:
        key = _DEV_KEY
    else:  # the API and the workers check it at start (Settings.check_for); this is for other callers
        raise SettingsError("ENGRAM_WEBHOOK_SECRETS_KEY is not set: webhook secrets can be neither sealed nor read")
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def seal(settings: Settings, secret: str) -> bytes:
    return _fernet(settings).encrypt(secret.encode())


def unseal(settings: Settings, sealed: bytes) -> str:
    return _fernet(settings).decrypt(sealed).decode()


def signed_headers(secret: str, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of a request with this body."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }
