"""``python -m vmpoolerd.adopt``, run as an operator would, on the test Redis."""

from __future__ import annotations

import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from vmpoolerd.store.generation import GenerationStore, GenerationWatch

from .fixtures import config_text
from .redis_server import fresh_redis, redis_server

D32 = "debian-7-i386"


class AdoptCommandTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = GenerationStore(self.redis, reactor)
        await GenerationWatch(self.store, (D32,)).check()  # an empty Redis: in doubt
        await self.redis.sadd(f"vmpooler__discovered__{D32}", "held1")
        self.config = self.mktemp()
        with open(self.config, "w") as f:
            f.write(config_text(redis_server().config))

    async def adopt(self, *options: str) -> subprocess.CompletedProcess[str]:
        return await deferToThread(
            subprocess.run, [sys.executable, "-m", "vmpoolerd.adopt", "--config", self.config,
                             *options], capture_output=True, text=True, timeout=60)

    async def test_adopts_held_vms(self) -> None:
        done = await self.adopt()
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("1 held VMs adopted as running", done.stdout)
        self.assertIn("no pool state", done.stdout)  # the doubt it ended
        self.assertIsNone(await self.store.doubt())
        self.assertEqual(set(await self.redis.smembers(f"vmpooler__running__{D32}")),
                         {"held1"})

    async def test_release(self) -> None:
        done = await self.adopt("--release")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIsNone(await self.store.doubt())
        self.assertEqual(set(await self.redis.smembers(f"vmpooler__discovered__{D32}")),
                         {"held1"})

    async def test_a_bad_config_does_nothing(self) -> None:
        with open(self.config, "w") as f:
            f.write(":pools: 3\n")
        done = await self.adopt()
        self.assertEqual(done.returncode, 1)
        self.assertIn(":vsphere:: is required", done.stderr)
        self.assertIsNotNone(await self.store.doubt())
