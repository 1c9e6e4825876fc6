"""
Pools on a Redis in doubt (Note [Held discovered VMs] in
vmpoolerd/manager/pool_plan.py, Note [Ending a doubt] in
vmpoolerd/manager/doubt.py): the manager against a real Redis and the
vSphere simulator, Redis flushed under it.
"""

from __future__ import annotations

from twisted.internet import reactor

from vmpoolerd.manager.doubt import Doubts
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.generation import GenerationStore, GenerationWatch
from vmpoolerd.timefmt import format_time

from .logs import captured_events
from .manager_case import CENTOS, DEBIAN, ManagerCase
from .waiting import until

POOLS = (DEBIAN, CENTOS)


class DoubtTests(ManagerCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.generations = GenerationStore(self.redis, reactor)
        self.watch = GenerationWatch(self.generations, POOLS)
        self.manager = Manager(self.config, self.store, self.provider, reactor, grace=10,
                               metrics=self.metrics,
                               doubts=Doubts(self.watch, self.generations, POOLS))

    async def cycles_later(self, n: int) -> None:
        """Until every maintainer has run *n* more cycles."""
        start = {name: m.cycles for name, m in self.manager.maintainers.items()}
        await until(f"{n} more cycles", lambda: all(
            m.cycles >= start[name] + n for name, m in self.manager.maintainers.items()))

    async def test_a_new_site_is_in_doubt_until_its_empty_folders_prove_it(self) -> None:
        events = captured_events(self)
        self.start()
        await until("the pools to fill", self.full)
        self.assertIsNone(await self.generations.doubt())
        proven = [e for e in events if "proven" in e.get("log_format", "")]
        self.assertEqual(len(proven), 1)
        self.assertIn("no pool state", proven[0]["doubt"])

    async def test_a_flushed_redis_destroys_no_vm(self) -> None:
        """Two VMs checked out, Redis flushed: every VM is held, none destroyed."""
        self.start()
        await until("the pools to fill", self.full)
        out = []
        for _ in range(2):
            answer = await self.client.post(f"/api/v1/vm/{DEBIAN}")
            out.append(answer.body[DEBIAN]["hostname"])
        await until("the pool to refill", self.full)
        before = self.names_in(DEBIAN) | self.names_in(CENTOS)
        await self.redis.flushall()
        await until("the doubt", lambda: self.watch.doubt is not None)
        await self.cycles_later(10)
        self.assertLessEqual(before, self.names_in(DEBIAN) | self.names_in(CENTOS))
        held = await self.members("discovered", DEBIAN) | await self.members("discovered",
                                                                             CENTOS)
        self.assertEqual(held, before)
        self.assertIn("lost", await self.generations.doubt() or "")
        status = (await self.client.get("/api/v1/status")).body["status"]
        self.assertIs(status["ok"], False)
        self.assertIn("lost", status["doubt"])
        self.assertIn("python -m vmpoolerd.adopt", status["message"])
        await until("the pools to fill again", self.full)  # with new clones

        # The operator adopts what vSphere holds: the held VMs become running.
        adopted = await self.generations.adopt(POOLS, format_time(reactor.seconds()))
        self.assertEqual(adopted, len(before))
        self.assertIsNone(await self.generations.doubt())
        # Another process's change shows in /status within its second
        # (Note [Status once a second]).
        async def trusted() -> bool:
            return "doubt" not in (await self.client.get("/status")).body["status"]
        await until("no doubt in /status", trusted, seconds=3)
        for host in out:
            self.assertIn(host, await self.members("running", DEBIAN))
        await self.cycles_later(3)
        self.assertLessEqual(set(out), self.names_in(DEBIAN))
