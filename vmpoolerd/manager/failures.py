"""
Why VMs fail: the kinds a failure is counted by, and its short reason.

Note [Failures explained]: each failed clone, boot that timed out,
readiness check that failed and destroy that failed is recorded with a
kind from KINDS (a bounded set: the label of ``/metrics``) and a reason a
person can act on ("port 22 refused", "hostname 'web3' is not the VM's
name", the vCenter's own message...), on the VM's record (``GET /vm``),
in its pool's recent failures and counts (``/status``, the dashboard)
and in ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# How many recent failures a pool keeps.
RECENT = 20


@dataclass(frozen=True)
class VmFailure:
    kind: str
    reason: str
