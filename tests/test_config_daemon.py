"""
Configuration from the environment alone, in a real twistd process (no
``--config``): vmpooler 3.x's containers are configured so.
"""

from __future__ import annotations

import json
import os
import subprocess

import treq
import yaml
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.config import RedisConfig, load_config, find_source
from vmpoolerd.tap import Options

from .daemons import TWISTD, DaemonCase
from .fixtures import config_text, fill_ready
from .processes import free_port, stop_process
from .redis_server import fresh_redis, redis_server
from .vcsim_server import inventory, start_vcsim
from .waiting import until

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def without_pools(text: str) -> str:
    raw = yaml.safe_load(text)
    del raw[":pools"]
    return yaml.safe_dump(raw)


class EnvironmentDaemonTests(DaemonCase):
    timeout = 60

    def start_with(self, environ: dict[str, str]) -> subprocess.Popen[bytes]:
        """twistd without --config, its configuration in ``environ``."""
        self.log = self.mktemp()
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("VMPOOLER_", "REDIS_", "EXTRA_CONFIG"))}
        process = subprocess.Popen(
            [TWISTD, "-n", "--logfile", self.log, "--pidfile", "", "vmpoolerd"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**inherited, **environ})
        self.addCleanup(stop_process, process, 0)
        return process

    async def pools(self, port: int) -> list[str]:
        response = await treq.get(f"http://127.0.0.1:{port}/api/v1/vm", persistent=False)
        return list(json.loads(await response.content()))

    async def test_the_yaml_text_in_vmpooler_config(self) -> None:
        await fresh_redis(self)
        port = free_port()
        process = self.start_with({"VMPOOLER_CONFIG": config_text(
            redis_server().config, host="127.0.0.1", port=port)})
        await self.wait_listening(process, port)
        self.assertEqual(await self.pools(port),
                         ["debian-7-i386", "debian-7-x86_64", "centos-7-x86_64"])

    async def test_a_file_and_variables_that_override_it(self) -> None:
        """$VMPOOLER_CONFIG_FILE names the file; $REDIS_PORT, $SITE_NAME ... win over it."""
        redis = await fresh_redis(self)
        await fill_ready(redis, "debian-7-i386", 1)
        port = free_port()
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            # Redis is not where the file says: the variables say where.
            f.write(config_text(RedisConfig("127.0.0.1", free_port()), host="127.0.0.1",
                                port=port, site_name="from-the-file", task_limit=4))
        real = redis_server().config
        process = self.start_with({
            "VMPOOLER_CONFIG_FILE": path, "REDIS_SERVER": real.server,
            "REDIS_PORT": str(real.port), "SITE_NAME": "from-the-environment",
            "TASK_LIMIT": "2"})
        await self.wait_listening(process, port)
        response = await treq.post(f"http://127.0.0.1:{port}/api/v1/vm/debian-7-i386",
                                    persistent=False)
        self.assertEqual(response.code, 200)
        with open(self.log) as f:
            log = f.read()
        self.assertIn("for from-the-environment:", log)

    async def test_a_bad_vmpooler_config_is_named_never_printed(self) -> None:
        text = config_text(host="127.0.0.1", port=free_port()).replace("size: 3", "size: -1")
        process = self.start_with({"VMPOOLER_CONFIG": text})
        self.assertNotEqual(await self.wait_exit(process), 0)
        out = process.stdout.read() + process.stderr.read()  # type: ignore[union-attr]
        self.assertIn(b"$VMPOOLER_CONFIG: :pools:[2].size: must be an integer >= 0", out)
        self.assertNotIn(b"secret", out)
        self.assertNotIn(b"Templates/d32", out)


class SourcesInOptionsTests(SynchronousTestCase):
    def test_pools_from_redis_need_redis(self) -> None:
        """No :pools: in the file: 3.x's pools are read from Redis; unreachable, an error."""
        text = without_pools(config_text(RedisConfig("127.0.0.1", free_port())))
        with self.assertRaises(usage.UsageError) as caught:
            Options(environ={"VMPOOLER_CONFIG": text}).parseOptions([])
        self.assertRegex(str(caught.exception),
                         r"^\$VMPOOLER_CONFIG: :pools:: the configuration has none, so they "
                         r"are read from Redis \(127.0.0.1:\d+\), which cannot be reached: ")

    def test_a_dummy_pool_is_served(self) -> None:
        raw = yaml.safe_load(config_text())
        raw[":providers"] = {":dummy": {"createvm_fail_percent": 5}}
        raw[":pools"][0]["provider"] = "dummy"
        options = Options(environ={"VMPOOLER_CONFIG": yaml.safe_dump(raw)})
        options.parseOptions([])
        self.assertEqual(options["parsed"].dummy("dummy").createvm_fail_percent, 5)


class RedisPoolsTests(DaemonCase):
    timeout = 30

    async def test_pools_from_redis(self) -> None:
        """3.x's pools in Redis (vmpooler__pools, vmpooler__pool__<name>), as 3.x writes them."""
        redis = await fresh_redis(self)
        await redis.sadd("vmpooler__pools", ["a", "b"])
        await redis.hmset("vmpooler__pool__a", {
            "template": "T/a", "folder": "F/a", "datastore": "ds", "size": "2",
            "alias": "a1,a2", "create_linked_clone": "false", "ready_ttl": "60",
            "domain": "a.example.com"})
        await redis.hmset("vmpooler__pool__b", {
            "template": "T/b", "folder": "F/b", "datastore": "ds", "size": "0", "alias": ""})
        text = without_pools(config_text(redis_server().config))
        options = Options(environ={"VMPOOLER_CONFIG": text})
        options.parseOptions([])
        config = options["parsed"]
        a = config.pool("a")
        self.assertEqual((config.pool_names, a.alias, a.size, a.create_linked_clone,
                          a.ready_ttl_minutes, config.domain_for("a"), config.pool("b").size),
                         (("a", "b"), ("a1", "a2"), 2, False, 60.0, "a.example.com", 0))
        self.assertIn(":pools:: read from Redis (2 pools), as the file has none",
                      config.notices)


class ExampleOnDummyTests(DaemonCase):
    """vmpooler's example config, its pools on its own ``:dummy:`` provider (as a
    staging site runs it), in a real twistd: the pools fill, a checkout is served."""

    timeout = 90

    async def test_dummy_pools_fill_and_serve_a_checkout(self) -> None:
        redis = await fresh_redis(self)
        with open(os.path.join(DATA, "vmpooler-3x-example.yaml")) as f:
            raw = yaml.safe_load(f)
        real = redis_server().config
        raw[":redis"].update(server=real.server, port=real.port)
        port = free_port()
        raw[":config"].update(port=port, host="127.0.0.1",
                              logfile=os.path.abspath(self.mktemp()))
        for pool in raw[":pools"]:
            pool.update(provider="dummy", size=2)
        process = self.start(yaml.safe_dump(raw))
        await self.wait_listening(process, port)

        async def full() -> bool:
            for pool in ("debian-7-i386", "debian-7-x86_64"):
                if len(await redis.smembers(f"vmpooler__ready__{pool}")) < 2:
                    return False
            return True
        await until("the dummy pools full", full, seconds=60)
        response = await treq.post(f"http://127.0.0.1:{port}/api/v1/vm/debian-7-i386",
                                    persistent=False)
        body = json.loads(await response.content())
        self.assertEqual((response.code, body["ok"]), (200, True), body)
        host = body["debian-7-i386"]["hostname"]
        self.assertTrue(host.startswith("poolvm-"), host)
        self.assertIn(host, await redis.smembers("vmpooler__running__debian-7-i386"))
        # The file's vCenter, which no pool uses now, is named and left alone.
        with open(self.log) as f:
            self.assertIn("no pool uses it; left alone", f.read())


class ExampleOnTheSimulatorTests(DaemonCase):
    """vmpooler's example config as a site runs it, its vCenter the
    simulator: only hosts, ports and paths changed (the simulator's one
    datastore, no readiness port); its pools fill from the simulator."""

    timeout = 120

    async def test_the_example_fills_its_pools_from_the_simulator(self) -> None:
        redis = await fresh_redis(self)
        with open(os.path.join(DATA, "vmpooler-3x-example.yaml")) as f:
            raw = yaml.safe_load(f)
        pools = raw[":pools"]
        vcsim = start_vcsim(inventory(
            templates=[{"path": pool["template"], "template": True} for pool in pools],
            folders=[pool["folder"] for pool in pools]), self)
        for provider in raw[":providers"].values():
            if "server" in provider:
                provider.update(server=vcsim.host, port=vcsim.port, insecure=True)
        real = redis_server().config
        raw[":redis"].update(server=real.server, port=real.port)
        port = free_port()
        raw[":config"].update(port=port, host="127.0.0.1", ready_check_port=0,
                              logfile=os.path.abspath(self.mktemp()))
        for pool in pools:
            pool.update(datastore="LocalDS_0")
        process = self.start(yaml.safe_dump(raw))
        await self.wait_listening(process, port)

        async def full() -> bool:
            for pool in pools:
                if len(await redis.smembers(f"vmpooler__ready__{pool['name']}")) < pool["size"]:
                    return False
            return True
        await until("the example's pools full", full, seconds=90)


class ExampleFixtureTests(SynchronousTestCase):
    def test_vmpooler_3x_example_loads(self) -> None:
        """vmpooler's own example config (only hosts, ports and paths changed) loads."""
        path = os.path.join(DATA, "vmpooler-3x-example.yaml")
        config = load_config(find_source(path, {}), {})
        self.assertEqual(config.layout, "3.x")
        self.assertEqual(config.pool_names, ("debian-7-i386", "debian-7-x86_64"))
        self.assertEqual([name for name, _ in config.providers], ["vsphere"])
        self.assertEqual(config.notices, tuple(
            f"provider {name!r} (class {kind!r}): no pool uses it; left alone"
            for name, kind in (("vsphere-pdx", "vsphere"), ("vsphere-bfs", "vsphere"),
                               ("dummy", "dummy"))))
        assert config.statsd is not None
        self.assertEqual((config.statsd.port, config.statsd.prefix), (8125, "vmpooler"))
        self.assertEqual((config.service.vm_checktime_minutes, config.service.ready_ttl_minutes,
                          config.linked_clones("debian-7-x86_64"),
                          config.service.max_lifetime_upper_limit_hours),
                         (1.0, 60.0, False, None))
