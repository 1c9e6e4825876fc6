"""
Note [Resend policy]: which SOAP requests the session sends again, and when.
This is the client's only retry rule for a request; :meth:`Session.send`
(session.py) is the only place that applies it.

- A request **refused** because the session is gone (``NotAuthenticated``:
  it expired, was terminated, or the client logged out) was not carried
  out: the session logs in again and the request goes once more, whatever
  it is.  Some servers answer an unauthenticated read with the fault in
  each object's ``missingSet`` instead (govmomi's simulator does): that is
  a refusal too (:func:`refusal_in`).
- A request whose pooled connection turned out **cut** (reset, closed,
  TLS EOF, no status line: :data:`CUT_CONNECTION`) may or may not have
  reached vCenter.  It goes once more only if it is in
  :data:`SAFE_TO_RESEND`; any other change (a clone, a snapshot) is not
  sent twice: it may have been done.
- **Timeouts** are never retried: a hung vCenter would double the wait.
- Nothing is retried more than once for each reason.

The other rule that runs work again is not about requests: an operation
that met a cached reference vCenter no longer knows runs once more with the
cache emptied (Note [Stale references], lookups.py).
"""

from __future__ import annotations

import enum
import http.client
import ssl
from typing import Any

from pyVmomi import vim

__all__ = ["CUT_CONNECTION", "SAFE_TO_RESEND", "Step", "next_step", "refusal_in"]

#: What a request on a connection the server has closed meanwhile raises.
#: Timeouts are not in it (``TimeoutError`` is an ``OSError``, not a
#: ``ConnectionError``).
CUT_CONNECTION = (
    ConnectionError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    http.client.BadStatusLine,
)

#: The SOAP methods sent again when their connection was cut, not knowing
#: whether vCenter read them: reads, and the two changes whose second
#: sending leaves the VM as the first did (destroyed; off).  Caveat: when the
#: first did reach vCenter, the second fails (the VM is gone, or already
#: off), and that failure is what the caller sees: ``destroy`` finds no VM
#: and answers False; ``power_off`` raises the task's ``InvalidPowerState``.
SAFE_TO_RESEND = frozenset(
    {
        "RetrievePropertiesEx",
        "ContinueRetrievePropertiesEx",
        "RetrieveProperties",
        "RetrieveContent",
        "CurrentTime",
        "FindChild",
        "FindByInventoryPath",
        "FindByDnsName",
        "Destroy_Task",
        "PowerOffVM_Task",
    }
)

_RETRIEVALS = frozenset({"RetrievePropertiesEx", "ContinueRetrievePropertiesEx"})


class Step(enum.Enum):
    """What to do about a request that failed."""

    RAISE = "raise"
    RESEND = "resend"  # the connection was cut; send it again on a new one
    LOGIN_AND_RESEND = "login and resend"  # refused: log in again, then send it


def next_step(error: BaseException, method: str, logged_in_again: bool, resent: bool) -> Step:
    """The policy above, for ``error`` raised by a request to ``method``
    that has already been sent again after a login (``logged_in_again``) or
    after a cut connection (``resent``)."""
    if isinstance(error, vim.fault.NotAuthenticated):
        return Step.RAISE if logged_in_again else Step.LOGIN_AND_RESEND
    if isinstance(error, CUT_CONNECTION) and method in SAFE_TO_RESEND and not resent:
        return Step.RESEND
    return Step.RAISE


def refusal_in(method: str, result: Any) -> BaseException | None:
    """The ``NotAuthenticated`` fault a property read answered in its
    objects' ``missingSet`` rather than raising it, else None."""
    if method in _RETRIEVALS:
        objects = result.objects if result is not None else []
    elif method == "RetrieveProperties":
        objects = result or []
    else:
        return None
    for content in objects:
        for missing in content.missingSet or []:
            if isinstance(missing.fault, vim.fault.NotAuthenticated):
                fault: BaseException = missing.fault
                return fault
    return None
