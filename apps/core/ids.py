"""Public ids: a short per-model prefix and 8 random characters (`i-3k9x2m7q`).

Integers stay internal; URLs, the API and the audit log speak only public ids. The alphabet
leaves out characters people confuse when they read an id aloud (0/o, 1/l)."""

import secrets

ALPHABET = "23456789abcdefghijkmnpqrstuvwxyz"
LENGTH = 8


def new_public_id(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def prefix_of(public_id: str) -> str:
    return public_id.split("-", 1)[0] if "-" in public_id else ""
