"""The interface tests of the manager's vSphere, on the real provider and on the fake."""

from __future__ import annotations

from typing import Any, Awaitable, TypeVar

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.vsphere.types import VsphereError

from .manager_case import ScriptedProvider
from .vcsim_server import start_vcsim
from .vsphere_contract import VsphereContract

T = TypeVar("T")


class ProviderContractTests(VsphereContract, TestCase):
    """The real provider, on the vSphere simulator."""

    def setUp(self) -> None:
        server = start_vcsim(None, self)
        provider = Provider(server.client(timeout=10), reactor, call_timeout=20)
        provider.startService()
        self.addCleanup(provider.stopService)
        self.vsphere = provider

    async def answered(self, method: str, call: Awaitable[T], result: Any) -> T:
        return await call

    async def failed(self, method: str, call: Awaitable[Any], error: Exception) -> None:
        with self.assertRaises(VsphereError):
            await call


class ScriptedProviderContractTests(VsphereContract, TestCase):
    """The tests' scripted provider, answered as the real one would."""

    def setUp(self) -> None:
        self.scripted = ScriptedProvider()
        self.vsphere = self.scripted

    async def answered(self, method: str, call: Awaitable[T], result: Any) -> T:
        self.assertEqual(len(self.scripted.calls[method]), 1)
        self.scripted.answer(method, result)
        return await call

    async def failed(self, method: str, call: Awaitable[Any], error: Exception) -> None:
        self.scripted.fail(method, error)
        with self.assertRaises(VsphereError):
            await call
