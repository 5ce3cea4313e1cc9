"""Users' own Opik API keys, encrypted at rest with ``CODI_EVAL_SECRET_KEY`` (Fernet)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyMissing(RuntimeError):
    """Storing a user's API key needs CODI_EVAL_SECRET_KEY."""


def _fernet(secret_key: str | None) -> Fernet:
    if not secret_key:
        raise SecretKeyMissing(
            "CODI_EVAL_SECRET_KEY is not set, so users' Opik API keys cannot be stored"
        )
    # Any passphrase works: derive the 32-byte key Fernet needs.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def encrypt(plain: str, secret_key: str | None) -> str:
    return _fernet(secret_key).encrypt(plain.encode()).decode()


def decrypt(token: str, secret_key: str | None) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyMissing(
            "a stored Opik API key cannot be decrypted with this CODI_EVAL_SECRET_KEY"
        ) from None


def hash_token(token: str) -> str:
    """API tokens are stored as their SHA-256 (they are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
