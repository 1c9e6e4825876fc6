"""Random names: tokens, snapshot names and VM hostnames, from a CSPRNG;
and the public name of a manager."""

import hashlib
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


def public_manager(identity: str) -> str:
    """
    A manager's id as answers anyone can read give it (``/status``,
    ``/metrics``): a digest, the same for the same manager, that names no
    host or process (its id, ``host:pid:random``, is in its own log at
    start, beside this name; Note [Public failures] in manager/failures.py).
    """
    return "manager-" + hashlib.sha256(identity.encode()).hexdigest()[:12]
