"""pyVmomi's faults and socket errors, told as :class:`VsphereError` and its kinds."""

from __future__ import annotations

import http.client

from pyVmomi import vim, vmodl

from .types import LoginFailed, NotFound, VsphereError, VsphereTimeout, VsphereUnavailable

__all__ = ["as_vsphere_error", "fault_message"]


def fault_message(fault: BaseException) -> str:
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None) or ""
    return f"{type(fault).__name__}: {msg}" if msg else type(fault).__name__


def as_vsphere_error(error: Exception, server: str, timeout: float) -> Exception:
    """``error`` as the :class:`VsphereError` it means (``error`` itself
    if it is one already, or if it is none of vSphere's: a bug)."""
    if isinstance(error, VsphereError):
        return error
    if isinstance(error, TimeoutError):
        return VsphereTimeout(f"vCenter {server} did not answer within {timeout} s")
    if isinstance(error, vim.fault.InvalidLogin):
        return LoginFailed(fault_message(error), error)
    if isinstance(error, vmodl.fault.ManagedObjectNotFound):
        return NotFound(fault_message(error), error)
    if isinstance(error, vmodl.MethodFault):
        return VsphereError(fault_message(error), error)
    if isinstance(error, (OSError, http.client.HTTPException)):
        return VsphereUnavailable(f"vCenter {server}: {error or type(error).__name__}")
    return error
