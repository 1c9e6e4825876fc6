"""
Why VMs fail: the kinds a failure is counted by, and its short reason.

Note [Failures explained]: each failed clone, boot that timed out,
readiness check that failed and destroy that failed is recorded with a
kind from KINDS (a bounded set: the label of ``/metrics``) and a reason a
person can act on ("port 22 refused", "hostname 'web3' is not the VM's
name", the vCenter's own message...), on the VM's record (``GET /vm``),
in its pool's recent failures and counts (``/status``, the dashboard)
and in ``/metrics``.

Note [Public failures]: a reason is raw text (a vCenter's own message
names its host, the template's, folder's and datastore's paths), so it is
written to the log and kept in Redis, but an answer anyone can read
(``/status``, the dashboard, ``GET /vm/<host>``, ``GET /ondemandvm/<id>``,
``/healthcheck``) carries only the kind and :data:`PUBLIC`'s fixed
sentence for it (:func:`public`).  The whole reason is shown to an
administrator alone (when ``:auth:`` names administrators: Note
[Administrators] in api/admins.py), and only where the caller is known
(``GET /vm/<host>``, ``GET /ondemandvm/<id>`` with their token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

CLONE = "clone"                  # vCenter refused or failed the clone
BOOT_TIMEOUT = "boot_timeout"    # not ready within the pool's timeout, cause unseen
NO_IP = "no_ip"                  # VMware Tools reported no address to probe
HOSTNAME = "hostname_mismatch"   # the guest's hostname is not the VM's name
PORT_REFUSED = "port_refused"    # the readiness port refused the connection
PORT_TIMEOUT = "port_timeout"    # the readiness port did not answer in time
UNREACHABLE = "unreachable"      # no route, no such name: the probe failed otherwise
DESTROY = "destroy"              # vCenter failed the destroy
NOT_TEMPLATE = "not_a_template"  # a template override that vSphere does not mark as one
KINDS = (CLONE, BOOT_TIMEOUT, NO_IP, HOSTNAME, PORT_REFUSED, PORT_TIMEOUT, UNREACHABLE,
         DESTROY, NOT_TEMPLATE)
# What an answer anyone can read says of each kind (Note [Public failures]).
PUBLIC = {
    CLONE: "vCenter did not clone the VM",
    BOOT_TIMEOUT: "the VM was not ready within its pool's timeout",
    NO_IP: "VMware Tools reported no address for the VM",
    HOSTNAME: "the VM's hostname is not its name",
    PORT_REFUSED: "the VM's readiness port refused the connection",
    PORT_TIMEOUT: "the VM's readiness port did not answer in time",
    UNREACHABLE: "the VM could not be reached",
    DESTROY: "vCenter did not destroy the VM",
    NOT_TEMPLATE: "the pool's new template is not a template in vSphere",
}
UNKNOWN = "the VM failed"  # a kind this daemon does not know (another's)
CLONES_PAUSED = "clones of this pool keep failing; they wait before the next try"


def public(kind: str) -> str:
    """The sentence an answer anyone can read gives for a kind of failure."""
    return PUBLIC.get(kind, UNKNOWN)


def public_record(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded failure (``{"host", "kind", "reason", "time"}``) as an
    answer anyone can read shows it: its reason the kind's sentence."""
    kind = str(recorded.get("kind", ""))
    return {"host": recorded.get("host", ""), "kind": kind, "reason": public(kind),
            "time": recorded.get("time", "")}


# How many recent failures a pool keeps.
RECENT = 20


@dataclass(frozen=True)
class VmFailure:
    kind: str
    reason: str
