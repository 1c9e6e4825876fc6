"""
The one module that relies on what pyVmomi does not document: a managed
object's ``_moId``, and :meth:`SoapStubAdapter.InvokeMethod` as the one
door every SOAP request goes through (its signature and ``info.wsdlName``).
tests/test_vsphere_pyvmomi.py fails the day an upgrade changes either.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from pyVmomi import SoapStubAdapter
from pyVmomi.VmomiSupport import GetServiceVersions, versionIdMap

__all__ = ["HookedStub", "Send", "method_name", "moid", "newest_common_version"]

T = TypeVar("T")
#: What a :class:`HookedStub` hands each request to: its SOAP method's
#: name, and the request itself, to be sent (once, or more) by calling it.
Send = Callable[[str, Callable[[], Any]], Any]


def moid(ref: Any) -> str:
    """A managed object reference's id (``vm-42``), which pyVmomi keeps private."""
    value: str = ref._moId
    return value


def method_name(info: Any) -> str:
    """The SOAP name (``CloneVM_Task``) of the method pyVmomi is about to call."""
    return str(getattr(info, "wsdlName", ""))


def newest_common_version(offered: Iterable[str]) -> str | None:
    """The newest vim25 version pyVmomi speaks among those a server offers
    (``/sdk/vimServiceVersions.xml``'s ``version`` texts), else None."""
    offered = set(offered)
    for version in GetServiceVersions("vim25"):
        if versionIdMap.get(version) in offered:
            return str(version)
    return None


class HookedStub(SoapStubAdapter):
    """A SOAP stub whose every request goes through ``send`` (counting, resends)."""

    def __init__(self, send: Send, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._send = send

    def InvokeMethod(  # noqa: N802 (pyvmomi's name)
        self, mo: Any, info: Any, args: Any, outerStub: Any = None  # noqa: N803
    ) -> Any:
        return self._send(
            method_name(info),
            lambda: SoapStubAdapter.InvokeMethod(self, mo, info, args, outerStub),
        )
