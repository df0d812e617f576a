"""SSH public key parsing and key pair generation (pure functions, no I/O)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from apps.core.exceptions import ValidationFailed

MIN_RSA_BITS = 2048
GENERATED_TYPES = ("ed25519", "rsa")


@dataclass(frozen=True)
class ParsedKey:
    public_key: str  # "<type> <base64>" without the comment
    key_type: str
    fingerprint: str  # OpenSSH's SHA256:<base64> form


def _fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_public_key(text: str) -> ParsedKey:
    """Validate an OpenSSH public key line; raise ValidationFailed with a field message."""
    def bad(message: str) -> ValidationFailed:
        return ValidationFailed(message, fields={"public_key": [message]})

    parts = (text or "").strip().split()
    if len(parts) < 2:
        raise bad("Expected an OpenSSH public key: '<type> <base64> [comment]'.")
    key_type, b64 = parts[0], parts[1]
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise bad("The key data is not valid base64.")
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {b64}".encode())
    except (ValueError, TypeError) as exc:
        raise bad(f"Not a valid SSH public key ({exc}).")
    except Exception:  # cryptography raises UnsupportedAlgorithm for unknown types
        raise bad(f"Unsupported key type '{key_type}'.")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise bad(f"RSA keys must have at least {MIN_RSA_BITS} bits (this one has {key.key_size}).")
    if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise bad(f"Unsupported key type '{key_type}'.")
    return ParsedKey(public_key=f"{key_type} {b64}", key_type=key_type, fingerprint=_fingerprint(blob))


def generate(key_type: str, comment: str) -> tuple[ParsedKey, str]:
    """A new key pair: the parsed public half and the OpenSSH private key text."""
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValidationFailed(
            f"Key type must be one of {', '.join(GENERATED_TYPES)}.", fields={"key_type": ["Unsupported key type."]}
        )
    private_text = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public_line = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    parsed = parse_public_key(f"{public_line.decode()} {comment}")
    return parsed, private_text
