"""The interface tests of the manager's vSphere: one mixin, run on the real
provider (on the simulator) and on the tests' in-memory vSphere."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.vsphere.provider import Provider

from .fake_vsphere import FakeVsphere
from .manager_case import ScriptedProvider
from .vcsim_server import DEFAULT_INVENTORY, start_vcsim
from .vsphere_contract import VsphereContract, signatures_match


class ProviderContractTests(VsphereContract, TestCase):
    """The real provider, on the vSphere simulator."""

    def setUp(self) -> None:
        server = start_vcsim(DEFAULT_INVENTORY, self)
        provider = Provider(server.client(timeout=10), reactor, call_timeout=20)
        provider.startService()
        self.addCleanup(provider.stopService)
        self.vsphere = provider


class FakeVsphereContractTests(VsphereContract, TestCase):
    """The tests' in-memory vSphere, from the same inventory."""

    def setUp(self) -> None:
        self.vsphere = FakeVsphere(DEFAULT_INVENTORY)


class ScriptedProviderSignatureTests(SynchronousTestCase):
    """The manager tests' scripted provider (answered by hand, so it holds
    no state to check) has the interface's methods and parameters."""

    def test_signatures(self) -> None:
        signatures_match(self, ScriptedProvider())
