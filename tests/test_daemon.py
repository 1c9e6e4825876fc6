"""The real daemon: twistd, its plugin, ports and signals."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import ssl
import subprocess
import tempfile

import treq
from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from vmpoolerd.api.site import connection_cap
from vmpoolerd.tap import Options

from .daemons import DaemonCase
from .fixtures import config_text, fill_ready
from .processes import free_port
from .redis_server import fresh_redis, redis_server
from .vcsim_server import VcsimServer, start_vcsim
from .waiting import until

def raw_get(port: int, path: str) -> tuple[bytes, bytes]:
    """The head and body of a GET, as they come on the wire."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


class PluginTests(SynchronousTestCase):
    def test_twistd_finds_the_plugin(self) -> None:
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("vmpoolerd", makers)
        self.assertIsInstance(makers["vmpoolerd"].options(), Options)

    def test_a_bad_config_is_a_usage_error(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(config_text().replace("size: 3", "size: -1"))
        with self.assertRaises(usage.UsageError) as caught:
            Options(environ={}).parseOptions(["--config", path])
        self.assertEqual(str(caught.exception),
                         f"{path}: :pools:[2].size: must be an integer >= 0")

    def test_a_bad_log_format_is_a_usage_error(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(config_text())
        with self.assertRaises(usage.UsageError) as caught:
            Options(environ={}).parseOptions(["--config", path, "--log-format", "xml"])
        self.assertEqual(str(caught.exception), "--log-format: must be one of vmpooler, json")

    def test_a_bad_role_is_a_usage_error(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(config_text())
        with self.assertRaises(usage.UsageError) as caught:
            Options(environ={}).parseOptions(["--config", path, "--role", "both"])
        self.assertEqual(str(caught.exception), "--role: must be one of all, api, manager")

    def test_config_from_the_environment(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(config_text())
        options = Options(environ={"VMPOOLER_CONFIG": path, "REDIS_PORT": "7000"})
        options.parseOptions([])
        self.assertEqual(options["parsed"].redis.port, 7000)


class DaemonTests(DaemonCase):
    timeout = 60

    async def test_serves_and_stops_on_sigterm(self) -> None:
        redis = await fresh_redis(self)
        await fill_ready(redis, "debian-7-i386", 3)
        port = free_port()
        process = self.start(config_text(redis_server().config, host="127.0.0.1", port=port))
        await self.wait_listening(process, port)
        base = f"http://127.0.0.1:{port}"
        response = await treq.get(f"{base}/api/v1/vm", persistent=False)
        self.assertEqual(json.loads(await response.content()),
                         ["debian-7-i386", "debian-7-x86_64", "centos-7-x86_64"])
        response = await treq.post(f"{base}/vm/debian-7-i386", persistent=False)
        body = json.loads(await response.content())
        self.assertEqual(response.code, 200)
        self.assertTrue(await redis.sismember("vmpooler__running__debian-7-i386",
                                              body["debian-7-i386"]["hostname"]))

        # Answers carry their length, as vmpooler's did, rather than chunks.
        head, raw = raw_get(port, "/api/v1/vm/nothing")
        self.assertIn(b"\r\ncontent-length: %d\r\n" % len(raw), head.lower() + b"\r\n")
        self.assertNotIn(b"chunked", head.lower())
        self.assertIs(json.loads(raw)["ok"], False)

        # A malformed form body is the API's to judge (JSON 400), not Twisted's.
        form = Headers({"Content-Type": ["multipart/form-data; boundary=x"]})
        response = await treq.post(f"{base}/api/v1/vm", b"garbage", persistent=False,
                                   headers=form)
        self.assertEqual(response.code, 400)
        self.assertIs(json.loads(await response.content())["ok"], False)

        # Redis stalls for a while; a checkout waits on it; SIGTERM comes.
        # The checkout is answered in full before the daemon exits.
        redis_server().cli("CLIENT", "PAUSE", "1500", "ALL")
        pending = treq.post(f"{base}/api/v1/vm/debian-7-i386", persistent=False)
        # Real time: the request must be inside the daemon before the signal,
        # and nothing outside it says when it is (Redis is paused).
        await deferLater(reactor, 0.3)
        process.send_signal(signal.SIGTERM)
        response = await pending
        body = json.loads(await response.content())
        self.assertEqual(response.code, 200, body)
        # twistd ends by the signal it was stopped with, as systemd expects.
        self.assertEqual(await self.wait_exit(process), -signal.SIGTERM)
        with open(self.log) as f:
            log = f.read()
        self.assertIn("API listening on 127.0.0.1:", log)
        self.assertIn("waiting for 1 requests to finish", log)
        self.assertNotIn("vsphere-secret", log)
        self.assertNotIn("secret", log)

    async def test_listens_on_a_unix_socket(self) -> None:
        """``:config: listen`` takes any Twisted server endpoint."""
        await fresh_redis(self)
        path = os.path.join(tempfile.mkdtemp(prefix="vmpoolerd-"), "api.sock")
        process = self.start(config_text(redis_server().config, listen=f"unix:{path}"))

        def answers() -> bytes | None:
            self.assertIsNone(process.poll(), "the daemon exited")
            try:
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(path)
                    client.sendall(b"GET /api/v1/vm HTTP/1.0\r\n\r\n")
                    return b"".join(iter(lambda: client.recv(65536), b""))
            except OSError:
                return None
        answer = await until("an answer on the socket", answers, seconds=10)
        self.assertTrue(answer.startswith(b"HTTP/1.0 200"), answer[:100])
        self.assertIn(b'"debian-7-i386"', answer)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(await self.wait_exit(process), -signal.SIGTERM)
        with open(self.log) as f:
            self.assertIn(f"API listening on {path}", f.read())

    async def test_listens_with_tls(self) -> None:
        await fresh_redis(self)
        directory = tempfile.mkdtemp(prefix="vmpoolerd-")
        key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        port = free_port()
        process = self.start(config_text(
            redis_server().config,
            listen=f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"))
        await self.wait_listening(process, port)
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), 5) as raw, \
                context.wrap_socket(raw) as client:
            client.sendall(b"GET /api/v1/vm HTTP/1.0\r\n\r\n")
            answer = b"".join(iter(lambda: client.recv(65536), b""))
        self.assertTrue(answer.startswith(b"HTTP/1.0 200"), answer[:100])
        self.assertIn(b'"debian-7-i386"', answer)
        # Plain HTTP on that port gets no answer from the API (at most a TLS
        # alert): an answer to this HTTP/1.0 request would start "HTTP/1.0".
        with socket.create_connection(("127.0.0.1", port), 5) as plain:
            plain.sendall(b"GET /api/v1/vm HTTP/1.0\r\n\r\n")
            try:
                head = plain.recv(100)
            except OSError:
                pass
        self.assertFalse(head.startswith(b"HTTP/"), head)

    async def test_clients_beyond_its_descriptors_are_refused_politely(self) -> None:
        """Note [Connection cap], in a daemon whose descriptor limit is low."""
        await fresh_redis(self)
        port, limit = free_port(), 300
        process = self.start(config_text(redis_server().config, host="127.0.0.1", port=port),
                             descriptors=limit)
        await self.wait_listening(process, port)
        # Real time: wait_listening's probe connection must be gone from the
        # daemon's descriptors, and nothing outside the daemon tells when.
        await deferLater(reactor, 0.5)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5)
                   for _ in range(limit + 40)]
        for client in clients:
            self.addCleanup(client.close)
        await until("the refusals", lambda: len(select.select(clients, [], [], 0)[0])
                    >= len(clients) - connection_cap(limit), seconds=10)
        readable, _, _ = select.select(clients, [], [], 0)
        refusals = [c.recv(65536) for c in readable]
        odd = [r for r in refusals
               if not (r.startswith(b"HTTP/1.1 503 ") and b"too many connections" in r)]
        self.assertEqual(odd, [])
        self.assertEqual(len(clients) - len(refusals), connection_cap(limit))
        head, body = raw_get(port, "/api/v1/status")  # at the cap: refused, not dropped
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        for client in clients[:10]:
            client.close()
        def status() -> bytes | None:
            head = raw_get(port, "/api/v1/status")[0]
            return head if head.startswith(b"HTTP/1.1 200 ") else None
        head = await until("room under the cap again", status, seconds=5)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIsNone(process.poll())
        with open(self.log) as f:
            log = f.read()
        self.assertNotIn("Too many open files", log)
        self.assertNotIn("Traceback", log)

    async def test_a_3x_config_fills_each_pool_from_its_own_vcenter(self) -> None:
        """A vmpooler 3.x file: two vCenters, a pool on each, per-pool domains."""
        redis = await fresh_redis(self)
        main = start_vcsim(None, self, boot_delay_ms=200)
        pdx = start_vcsim(None, self, boot_delay_ms=200)
        port = free_port()

        def provider(server: VcsimServer) -> str:
            return (f"    server: '{server.host}'\n    port: {server.port}\n"
                    f"    username: '{server.username}'\n    password: '{server.password}'\n"
                    "    insecure: true\n")
        redis_config = redis_server().config
        process = self.start(
            ":providers:\n  :vsphere:\n" + provider(main)
            + "  :vsphere-pdx:\n    provider_class: 'vsphere'\n" + provider(pdx)
            + ":dns_configs:\n"
            "  :main:\n    dns_class: 'dynamic-dns'\n    domain: 'example.com'\n"
            "  :pdx:\n    dns_class: 'dynamic-dns'\n    domain: 'pdx.example.com'\n"
            f":redis:\n  server: '127.0.0.1'\n  port: {redis_config.port}\n"
            f":config:\n  host: '127.0.0.1'\n  port: {port}\n  ready_check_port: 0\n"
            "  check_loop_delay_min: 0.1\n  check_loop_delay_max: 1\n  prefix: 't-'\n"
            ":pools:\n"
            "  - name: 'debian-7'\n    template: 'Templates/debian/debian-7-x86_64'\n"
            "    folder: 'Pools/debian-7'\n    datastore: 'LocalDS_0'\n    size: 2\n"
            "    provider: 'vsphere'\n    dns_plugin: 'main'\n"
            "  - name: 'centos-7'\n    template: 'Templates/centos-7-plain'\n"
            "    folder: 'Pools/nested/centos-7'\n    datastore: 'LocalDS_0'\n    size: 2\n"
            "    provider: 'vsphere-pdx'\n    dns_plugin: 'pdx'\n")
        await self.wait_listening(process, port)

        async def full() -> bool:
            return all([await redis.scard(f"vmpooler__ready__{pool}") == 2
                        for pool in ("debian-7", "centos-7")])
        await until("both pools to fill", full, seconds=60)
        self.assertEqual(len(main.client().inventory("Pools/debian-7")), 2)
        self.assertEqual(main.client().inventory("Pools/nested/centos-7"), [])
        self.assertEqual(len(pdx.client().inventory("Pools/nested/centos-7")), 2)
        self.assertEqual(pdx.client().inventory("Pools/debian-7"), [])
        response = await treq.post(f"http://127.0.0.1:{port}/api/v3/vm/debian-7+centos-7",
                                   persistent=False)
        body = json.loads(await response.content())
        self.assertEqual(response.code, 200, body)
        self.assertNotIn("domain", body)
        self.assertTrue(body["debian-7"]["hostname"].endswith(".example.com"), body)
        self.assertTrue(body["centos-7"]["hostname"].endswith(".pdx.example.com"), body)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(await self.wait_exit(process), -signal.SIGTERM)

    async def test_vmfloaty_ondemand_polls_until_its_vms_are_ready(self) -> None:
        """vmfloaty's --ondemand: post the request, poll every few seconds
        (202) until the answer is 200 with every VM, on v1 and v3 URLs."""
        redis = await fresh_redis(self)
        vcsim = start_vcsim(None, self, boot_delay_ms=300, clone_delay_ms=300)
        port = free_port()
        process = self.start(
            f":vsphere:\n  server: '{vcsim.host}'\n  port: {vcsim.port}\n"
            f"  username: '{vcsim.username}'\n  password: '{vcsim.password}'\n"
            "  insecure: true\n"
            f":redis:\n  server: '127.0.0.1'\n  port: {redis_server().config.port}\n"
            f":config:\n  host: '127.0.0.1'\n  port: {port}\n  ready_check_port: 0\n"
            "  check_loop_delay_min: 0.2\n  check_loop_delay_max: 1\n  prefix: 't-'\n"
            "  domain: 'example.com'\n"
            ":pools:\n"
            "  - name: 'debian-7'\n    template: 'Templates/debian/debian-7-x86_64'\n"
            "    folder: 'Pools/debian-7'\n    datastore: 'LocalDS_0'\n    size: 1\n")
        await self.wait_listening(process, port)
        for api in ("/api/v1", "/api/v3"):
            base = f"http://127.0.0.1:{port}{api}"
            response = await treq.post(f"{base}/ondemandvm", json.dumps({"debian-7": 2}).encode(),
                                       headers=Headers({"X-AUTH-TOKEN": ["anything"]}),
                                       persistent=False)
            created = json.loads(await response.content())
            self.assertEqual(response.code, 201, created)
            codes = []
            while True:
                response = await treq.get(f"{base}/ondemandvm/{created['request_id']}",
                                          persistent=False)
                body = json.loads(await response.content())
                codes.append(response.code)
                if response.code == 200 or len(codes) > 30:
                    break
                self.assertEqual((response.code, body["ready"]), (202, False), body)
                # Real time, on purpose: vmfloaty waits a second between polls.
                await deferLater(reactor, 1)
            self.assertEqual(response.code, 200, body)
            self.assertIs(body["ready"], True)
            self.assertEqual(codes[0], 202)
            hosts = body["debian-7"]["hostname"]
            self.assertEqual(len(hosts), 2)
            self.assertTrue(all(h.endswith(".example.com") for h in hosts), hosts)
            names = {h.partition(".")[0] for h in hosts}
            self.assertLessEqual(names, await redis.smembers("vmpooler__running__debian-7"))
            self.assertLessEqual(names, {vm.name for vm in
                                         vcsim.client().inventory("Pools/debian-7")})
        process.send_signal(signal.SIGTERM)
        self.assertEqual(await self.wait_exit(process), -signal.SIGTERM)

    async def test_an_api_daemon_and_a_manager_daemon(self) -> None:
        """--role: the manager fills the pools from the simulator and serves
        only its health check and metrics; the API daemon, whose vCenter
        does not even exist, hands the VMs out."""
        redis = await fresh_redis(self)
        vcsim = start_vcsim(None, self, boot_delay_ms=100)

        def config(server: str, port: int, api_port: int) -> str:
            return (f":vsphere:\n  server: '{server}'\n  port: {port}\n"
                    f"  username: '{vcsim.username}'\n  password: '{vcsim.password}'\n"
                    "  insecure: true\n"
                    f":redis:\n  server: '127.0.0.1'\n  port: {redis_server().config.port}\n"
                    f":config:\n  host: '127.0.0.1'\n  port: {api_port}\n"
                    "  ready_check_port: 0\n  check_loop_delay_min: 0.2\n"
                    "  check_loop_delay_max: 1\n  prefix: 't-'\n"
                    ":pools:\n"
                    "  - name: 'debian-7'\n    template: 'Templates/debian/debian-7-x86_64'\n"
                    "    folder: 'Pools/debian-7'\n    datastore: 'LocalDS_0'\n    size: 2\n")
        manager_port, api_port = free_port(), free_port()
        manager = self.start(config(vcsim.host, vcsim.port, manager_port), "--role", "manager")
        api = self.start(config("127.0.0.1", free_port(), api_port), "--role", "api")
        await self.wait_listening(manager, manager_port)
        await self.wait_listening(api, api_port)
        await until("the manager to fill the pool", lambda: redis.scard(
            "vmpooler__ready__debian-7").addCallback(lambda n: n == 2), seconds=30)

        async def get(port: int, path: str) -> tuple[int, bytes]:
            response = await treq.get(f"http://127.0.0.1:{port}{path}", persistent=False)
            return response.code, await response.content()
        response = await treq.post(f"http://127.0.0.1:{api_port}/api/v1/vm/debian-7+debian-7",
                                   persistent=False)
        body = json.loads(await response.content())
        self.assertEqual(response.code, 200, body)
        self.assertEqual(len(body["debian-7"]["hostname"]), 2)
        code, raw = await get(api_port, "/api/v1/healthcheck")
        self.assertEqual((code, json.loads(raw)["ok"]), (200, True))
        code, raw = await get(manager_port, "/api/v1/vm")
        self.assertEqual(code, 404)
        self.assertIs(json.loads(raw)["ok"], False)
        self.assertEqual((await get(manager_port, "/api/v1/healthcheck"))[0], 200)
        code, raw = await get(manager_port, "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b"vmpooler_pool_vms", raw)
        for process in (api, manager):
            process.send_signal(signal.SIGTERM)
            self.assertEqual(await self.wait_exit(process), -signal.SIGTERM)
        with open(self.log) as f:
            self.assertIn("vmpoolerd (api)", f.read())

    async def test_json_logfile(self) -> None:
        await fresh_redis(self)
        port, logfile = free_port(), self.mktemp()
        process = self.start(config_text(redis_server().config, host="127.0.0.1", port=port,
                                         logfile=logfile), "--log-format", "json")
        await self.wait_listening(process, port)
        process.send_signal(signal.SIGTERM)
        await self.wait_exit(process)
        with open(logfile) as f:
            events = [json.loads(line.strip("\x1e")) for line in f if line.strip("\x1e\n")]
        namespaces = {e["log_namespace"] for e in events}
        self.assertIn("vmpoolerd.api.site", namespaces)
        self.assertTrue(all(n.startswith("vmpoolerd") for n in namespaces), namespaces)
        with open(logfile) as f:
            self.assertNotIn("secret", f.read())

    async def test_bad_config_exits_before_listening(self) -> None:
        port = free_port()
        text = config_text(host="127.0.0.1", port=port).replace("size: 3", "size: -1")
        process = self.start(text)
        self.assertNotEqual(await self.wait_exit(process), 0)
        out = process.stdout.read() + process.stderr.read()  # type: ignore[union-attr]
        self.assertIn(b":pools:[2].size: must be an integer >= 0", out)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
