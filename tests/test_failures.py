"""
Every failure explained (Note [Failures explained]), against a real Redis
and the vSphere simulator: a missing template, a VM without an IP, a
closed readiness port and a hostname that is not the VM's name each say
why, on the VM's record (GET /vm), in /status and in /metrics; a pool
whose clones keep failing pauses them and says so (Note [Failing clones]).
"""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.dashboard import Dashboard
from vmpoolerd.manager import pool_plan
from vmpoolerd.manager.failures import CLONES_PAUSED, public
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.dashboard import DashboardStore

from .http import Client
from .manager_case import CENTOS, DEBIAN, FOLDERS, ManagerCase
from .processes import free_port
from .waiting import until


class FailureCase(ManagerCase):
    service: dict[str, Any] = {"timeout": 0.05}  # 3 s to become ready

    def template_gone(self, template: str) -> None:
        """CENTOS's template is ``template``, which the simulator does not
        have; the manager is built for that configuration."""
        self.config = dataclasses.replace(self.config, pools=tuple(
            dataclasses.replace(p, template=template) if p.name == CENTOS else p
            for p in self.config.pools))
        self.manager = Manager(self.config, self.store, self.provider, reactor, grace=10,
                               metrics=self.metrics)

    async def failure_of(self, pool: str, kind: str) -> dict[str, Any]:
        """The pool's first recorded failure of ``kind``, checked everywhere
        it is shown."""
        async def recorded() -> Any:
            for raw in await self.redis.lrange(f"vmpooler__failures__{pool}", 0, -1):
                failure = json.loads(raw)
                if failure["kind"] == kind:
                    return failure
            return None
        failure: dict[str, Any] = await until(f"a {kind} failure of {pool}", recorded,
                                              seconds=60)
        # Answers anyone can read give the kind's sentence (Note [Public failures]).
        vm = (await self.client.get(f"/api/v1/vm/{failure['host']}")).body[failure["host"]]
        self.assertEqual((vm["failure"]["kind"], vm["failure"]["reason"]),
                         (kind, public(kind)))
        status = (await self.client.get("/api/v1/status")).body["pools"][pool]
        self.assertGreaterEqual(status["failures"]["count"][kind], 1)
        self.assertIn((kind, public(kind)),
                      [(f["kind"], f["reason"]) for f in status["failures"]["recent"]])
        metrics = self.metrics.render().decode()
        self.assertIn(f'vmpooler_vm_failures_total{{kind="{kind}",pool="{pool}"}}', metrics)
        return failure


class MissingTemplateTests(FailureCase):
    async def test_clones_fail_saying_why_then_pause(self) -> None:
        self.template_gone("Templates/gone")
        self.start()
        failure = await self.failure_of(CENTOS, "clone")
        self.assertIn("Templates/gone", failure["reason"])

        async def paused() -> Any:
            return (await self.client.get("/api/v1/status")).body["pools"][CENTOS].get(
                "clones_paused")
        pause = await until("the pool's clones paused", paused)
        self.assertGreaterEqual(pause["failures"], 3)
        self.assertEqual(pause["reason"], CLONES_PAUSED)
        self.assertIn(CENTOS, self.manager.paused() or "")
        # No clone is tried while paused, and the other pool fills.
        tried = len(await self.redis.lrange(f"vmpooler__failures__{CENTOS}", 0, -1))
        await until("debian-7 full", lambda: self.ready(DEBIAN, 3))
        self.assertEqual(len(await self.redis.lrange(f"vmpooler__failures__{CENTOS}", 0, -1)),
                         tried)

    async def ready(self, pool: str, count: int) -> bool:
        return len(await self.members("ready", pool)) == count


class PublicAnswerTests(FailureCase):
    """Note [Public failures] in vmpoolerd/manager/failures.py: a real
    failure (a template the simulator does not have) and a pause, then
    every answer anyone can read, free of vCenter's host, the paths and the
    manager's host and process."""

    async def test_no_host_path_or_process_in_public_answers(self) -> None:
        self.template_gone("Secret/gone")
        store = ApiStore(self.redis, reactor)
        dashboard = Dashboard(self.config, DashboardStore(self.redis, reactor), reactor,
                              store.overrides.live, store.pool_counts)
        client = Client(VmpoolerApi(self.config, store, reactor, metrics=self.metrics,
                                    dashboard=dashboard.resource(),
                                    warnings={"pools": self.manager.paused}).resource())
        self.start()

        async def paused() -> Any:
            return (await client.get("/api/v1/status")).body["pools"][CENTOS].get(
                "clones_paused")
        await until("the pool's clones paused", paused, seconds=60)
        recorded = json.loads((await self.redis.lrange(f"vmpooler__failures__{CENTOS}",
                                                       0, 0))[0])
        self.assertIn("Secret/gone", recorded["reason"])  # kept, for the log and Redis
        host = recorded["host"]
        answers = [(await client.get(path)).body for path in (
            "/api/v1/status", "/api/v3/status", f"/api/v1/vm/{host}", f"/api/v3/vm/{host}",
            "/api/v1/healthcheck", "/dashboard/stats/vmpooler/pool")]
        self.assertIn("clones failed in a row", json.dumps(answers[4]))
        response = await client.stub.get("http://vmpooler.test/metrics")
        texts = [json.dumps(answer) for answer in answers] + [
            (await response.content()).decode()]
        self.assertIn("manager-", texts[0])
        for secret in ("Secret", FOLDERS[CENTOS], "LocalDS_0", f":{self.server.port}",
                       self.manager.identity, f"{socket.gethostname()}:"):
            for text in texts:
                self.assertNotIn(secret, text)


class NoAddressTests(FailureCase):
    vcsim = {"boot_delay_ms": 100, "guest_ip": ""}

    async def test_a_vm_without_an_ip(self) -> None:
        self.start()
        failure = await self.failure_of(DEBIAN, "no_ip")
        self.assertEqual(failure["reason"], "VMware Tools reported no IP address")


class ClosedPortTests(FailureCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.port = free_port()
        self.service = {**FailureCase.service, "ready_check_port": self.port}
        await super().setUp()

    async def test_a_closed_port(self) -> None:
        self.assertEqual(self.config.service.ready_check_port, self.port)
        self.start()
        failure = await self.failure_of(CENTOS, "port_refused")
        self.assertEqual(failure["reason"], f"port {self.port} refused the connection")


class ForeignHostnameCase(FailureCase):
    """Note [A foreign hostname]: every guest reports "localhost"; a VM is
    ready as soon as its port answers, and its hostname counts once it has
    been ready for HOSTNAME_GRACE seconds (shortened here from 60)."""

    vcsim = {"boot_delay_ms": 100, "guest_hostname": "localhost"}

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.patch(pool_plan, "HOSTNAME_GRACE", 1.0)
        await super().setUp()

    async def debian_ready(self) -> set[str]:
        return await self.members("ready", DEBIAN)


class HostnameTests(ForeignHostnameCase):
    async def test_a_ready_vm_whose_hostname_is_not_its_name_is_replaced(self) -> None:
        self.start()
        failure = await self.failure_of(DEBIAN, "hostname_mismatch")
        self.assertEqual(failure["reason"], "its hostname is 'localhost', not its name")
        fields = await self.redis.hgetall(f"vmpooler__vm__{failure['host']}")
        self.assertIn("ready", fields)  # it was ready first

        async def replaced() -> bool:
            ready = await self.debian_ready()
            return len(ready) > 0 and failure["host"] not in ready
        await until("its replacement", replaced)


class HostnameCheckOffTests(ForeignHostnameCase):
    service = {**FailureCase.service, "check_ready_vm_hostname_for_mismatch": False}

    async def test_the_check_off_keeps_it(self) -> None:
        self.start()

        async def full() -> bool:
            return len(await self.debian_ready()) == 3
        await until("debian-7 full", full)
        first = await self.debian_ready()
        await deferLater(reactor, 2.0, lambda: None)  # twice the shortened grace
        self.assertEqual(await self.debian_ready(), first)
        self.assertEqual(await self.redis.lrange(f"vmpooler__failures__{DEBIAN}", 0, -1), [])
