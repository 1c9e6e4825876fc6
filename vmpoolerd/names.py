"""Random names: tokens, snapshot names and VM hostnames, from a CSPRNG."""

import secrets
import string

ALPHABET = string.ascii_lowercase + string.digits


def random_name(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_token() -> str:
    """An auth token or snapshot name: 32 characters of ``[a-z0-9]``."""
    return random_name(32)


def new_hostname(prefix: str) -> str:
    """A VM name: ``prefix`` and 15 characters of ``[a-z0-9]``."""
    return prefix + random_name(15)
