"""
The dashboard store's interface, as tests of it that run against both the
real :class:`DashboardStore` (on a real Redis) and the fake that tests of
the sampler use.
"""

from __future__ import annotations

from typing import Awaitable, Protocol, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from vmpoolerd.store.dashboard import HORIZON, PoolSample

T0 = 1_700_000_000
POOLS = ("pool-a", "pool-b")


class AnyDashboardStore(Protocol):
    def sample(self, pools: Sequence[str], now: float, interval: float) -> Awaitable[int]: ...

    def read(self, pools: Sequence[str], history_since: float | None = None
             ) -> Awaitable[list[PoolSample]]: ...


class FakeDashboardStore:
    """
    A DashboardStore in memory: ``counts`` are each pool's ready and running
    VMs.  Every call of :meth:`sample` is noted in ``calls``; while ``held``,
    its answer waits in ``answers`` for the test to fire it.
    """

    def __init__(self, held: bool = False) -> None:
        self.held = held
        self.counts: dict[str, tuple[int, int]] = {}
        self.calls: list[tuple[tuple[str, ...], float, float]] = []
        self.answers: list[Deferred[int]] = []
        self._samples: dict[str, list[list[int]]] = {}  # oldest first

    def sample(self, pools: Sequence[str], now: float, interval: float) -> Deferred[int]:
        self.calls.append((tuple(pools), now, interval))
        recorded = 0
        for pool in pools:
            samples = self._samples.setdefault(pool, [])
            if not samples or now - samples[-1][0] >= interval / 2:
                samples.append([int(now), *self.counts.get(pool, (0, 0))])
                recorded += 1
            samples[:] = [s for s in samples if s[0] >= now - HORIZON]
        if not self.held:
            return succeed(recorded)
        answer: Deferred[int] = Deferred()
        self.answers.append(answer)
        return answer

    def read(self, pools: Sequence[str], history_since: float | None = None
             ) -> Deferred[list[PoolSample]]:
        return succeed([PoolSample(
            *self.counts.get(pool, (0, 0)),
            None if history_since is None else
            [s for s in self._samples.get(pool, []) if s[0] >= history_since])
            for pool in pools])


class DashboardStoreContract(TestCase):
    """
    What any dashboard store does; a subclass provides the store and the
    counts.  (Test modules import this module, not the class, so that it
    is not collected as tests of its own.)
    """

    def store(self) -> AnyDashboardStore:
        raise NotImplementedError

    async def set_counts(self, pool: str, ready: int, running: int) -> None:
        raise NotImplementedError

    async def test_no_pools(self) -> None:
        self.assertEqual(await self.store().sample((), T0, 10), 0)
        self.assertEqual(await self.store().read(()), [])

    async def test_counts_without_history(self) -> None:
        await self.set_counts("pool-a", 3, 2)
        self.assertEqual(await self.store().read(POOLS),
                         [PoolSample(3, 2, None), PoolSample(0, 0, None)])

    async def test_samples_oldest_first(self) -> None:
        store = self.store()
        self.assertEqual(await store.sample(POOLS, T0, 10), 2)
        await self.set_counts("pool-a", 3, 1)
        self.assertEqual(await store.sample(POOLS, T0 + 10, 10), 2)
        self.assertEqual(await store.read(POOLS, T0), [
            PoolSample(3, 1, [[T0, 0, 0], [T0 + 10, 3, 1]]),
            PoolSample(0, 0, [[T0, 0, 0], [T0 + 10, 0, 0]])])
        self.assertEqual((await store.read(POOLS, T0 + 5))[0].history, [[T0 + 10, 3, 1]])
        self.assertEqual(await store.read(("pool-c",), T0), [PoolSample(0, 0, [])])

    async def test_one_sample_per_half_interval(self) -> None:
        # Several daemons sampling one Redis record one sample between them.
        store = self.store()
        self.assertEqual(await store.sample(POOLS, T0, 10), 2)
        self.assertEqual(await store.sample(POOLS, T0 + 4, 10), 0)
        self.assertEqual(await store.sample(POOLS, T0 + 5, 10), 2)
        history = (await store.read(POOLS, 0))[0].history
        self.assertEqual(history, [[T0, 0, 0], [T0 + 5, 0, 0]])

    async def test_samples_past_the_horizon_are_dropped(self) -> None:
        store = self.store()
        await store.sample(POOLS, T0, 10)
        await store.sample(POOLS, T0 + HORIZON, 10)
        self.assertEqual(len((await store.read(POOLS, 0))[0].history or []), 2)
        await store.sample(POOLS, T0 + HORIZON + 5, 10)
        self.assertEqual((await store.read(POOLS, 0))[0].history,
                         [[T0 + HORIZON, 0, 0], [T0 + HORIZON + 5, 0, 0]])
