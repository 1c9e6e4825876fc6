"""
What vmpoolerd.vsphere.pyvmomi_adapter relies on in pyVmomi, checked
without a server: these fail the day an upgrade takes it away.
"""

from __future__ import annotations

import datetime
import inspect
from typing import Any, Callable

from pyVmomi import SoapStubAdapter, vim
from pyVmomi.VmomiSupport import GetServiceVersions, versionIdMap
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.vsphere.pyvmomi_adapter import HookedStub, moid, newest_common_version


class PyvmomiAdapterTests(SynchronousTestCase):
    def test_moid_is_the_reference_id(self) -> None:
        self.assertEqual(moid(vim.VirtualMachine("vm-42")), "vm-42")
        self.assertEqual(moid(vim.Folder("group-v3", None)), "group-v3")

    def test_invoke_method_keeps_its_signature(self) -> None:
        def parameters(method: Any) -> list[tuple[str, Any]]:
            return [(p.name, p.default) for p in inspect.signature(method).parameters.values()]

        self.assertEqual(parameters(HookedStub.InvokeMethod),
                         parameters(SoapStubAdapter.InvokeMethod))

    def test_every_request_goes_through_the_hook_by_its_soap_name(self) -> None:
        """A call on a managed object reaches ``send`` with its SOAP name,
        and ``send``'s answer is the call's (nothing goes on the wire here)."""
        sent: list[str] = []
        now = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)

        def send(method: str, request: Callable[[], Any]) -> Any:
            sent.append(method)
            return now

        stub = HookedStub(send, host="127.0.0.1", port=9)
        self.assertEqual(vim.ServiceInstance("ServiceInstance", stub).CurrentTime(), now)
        self.assertEqual(sent, ["CurrentTime"])

    def test_the_newest_common_version(self) -> None:
        newest = GetServiceVersions("vim25")[0]
        self.assertEqual(newest_common_version({versionIdMap[newest], "1.0"}), newest)
        older = versionIdMap[GetServiceVersions("vim25")[2]]
        chosen = newest_common_version({older})
        assert chosen is not None
        self.assertEqual(versionIdMap[chosen], older)
        self.assertIsNone(newest_common_version({"1.0"}))
