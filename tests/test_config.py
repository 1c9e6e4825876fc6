"""Reading vmpooler's YAML."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.config import ConfigError, config_path, parse_config, read_config

MINIMAL = """
:vsphere:
  server: vcenter.example.com
  username: vmpooler
  password: swordfish
:pools:
  - name: debian-7-i386
    template: Templates/debian-7-i386
    folder: Pooled VMs/debian-7-i386
    datastore: vmstorage
    size: 5
"""


class DefaultsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        c = parse_config(MINIMAL)
        vsphere = c.provider("vsphere")
        self.assertEqual((vsphere.port, vsphere.insecure, vsphere.datacenter), (443, False, None))
        self.assertEqual((c.redis.server, c.redis.port, c.redis.db, c.redis.data_ttl_hours),
                         ("localhost", 6379, 0, 168.0))
        s = c.service
        self.assertEqual((s.port, s.host, s.task_limit, s.timeout_minutes,
                          s.vm_checktime_minutes, s.vm_lifetime_hours,
                          s.vm_lifetime_auth_hours, s.prefix, s.max_request_vms),
                         (4567, "0.0.0.0", 10, 15.0, 15.0, 24.0, 24.0, "", 100))
        self.assertEqual((s.check_loop_delay_min, s.check_loop_delay_max,
                          s.check_loop_delay_decay, s.ready_check_port,
                          s.ready_check_address), (5.0, 60.0, 2.0, 22, "hostname"))
        self.assertIsNone(c.auth)
        self.assertIsNone(c.graphite)
        self.assertEqual(c.pools[0].alias, ())

    def test_auth_lifetime_follows_the_lifetime(self) -> None:
        c = parse_config(MINIMAL + ":config:\n  vm_lifetime: 12\n")
        self.assertEqual((c.service.vm_lifetime_hours, c.service.vm_lifetime_auth_hours),
                         (12.0, 12.0))
        c = parse_config(MINIMAL + ":config:\n  vm_lifetime: 12\n  vm_lifetime_auth: 2\n")
        self.assertEqual((c.service.vm_lifetime_hours, c.service.vm_lifetime_auth_hours),
                         (12.0, 2.0))

    def test_every_service_key_is_read(self) -> None:
        """Each :config: key reaches its field (the defaults are the classes' own)."""
        c = parse_config(MINIMAL + ":config:\n  task_limit: 3\n  timeout: 7\n"
                         "  ready_check_port: 0\n  max_request_vms: 9\n  prefix: ci\n")
        s = c.service
        self.assertEqual((s.task_limit, s.timeout_minutes, s.ready_check_port,
                          s.max_request_vms, s.prefix), (3, 7.0, 0, 9, "ci"))

    def test_plain_section_names(self) -> None:
        c = parse_config(MINIMAL.replace(":vsphere:", "vsphere:").replace(":pools:", "pools:"))
        self.assertEqual(c.pool_names, ("debian-7-i386",))

    def test_the_password_is_not_in_repr(self) -> None:
        self.assertNotIn("swordfish", repr(parse_config(MINIMAL)))

    def test_full(self) -> None:
        c = parse_config(MINIMAL + """
  - name: centos
    alias: c7
    template: T/c
    folder: F/c
    datastore: ds
    size: "2"
    pool: Cluster1/Resources/pool
    timeout: 0.5
    ready_ttl: 60
:redis:
  server: redis.example.com
  port: 6380
  data_ttl: 0.5
:auth:
  provider: ldap
  :ldap:
    host: ldap.example.com
    base:
      - ou=people,dc=example,dc=com
      - ou=staff,dc=example,dc=com
    user_object: [uid, cn]
    encryption: simple_tls
    port: 636
:graphite:
  server: graphite.example.com
:tagfilter:
  url: '(.*)/'
:config:
  vm_checktime: 0.05
  vm_lifetime: 12
  vm_lifetime_auth: 48
  allowed_tags: [user, url]
  domain: example.com
  prefix: ci-
  ready_check_port: 0
  ready_check_address: ip
""")
        self.assertEqual(c.pools_for("c7"), ("centos",))
        self.assertEqual(c.pools_for("centos"), ("centos",))
        self.assertEqual(c.pools_for("nothing"), ())
        self.assertEqual(c.pool("centos").size, 2)
        self.assertEqual(c.pool("centos").resource_pool, "Cluster1/Resources/pool")
        self.assertEqual(c.pool("centos").timeout_minutes, 0.5)
        self.assertEqual(c.redis.data_ttl_hours, 0.5)
        assert c.auth is not None
        self.assertEqual(c.auth.base, ("ou=people,dc=example,dc=com", "ou=staff,dc=example,dc=com"))
        self.assertEqual((c.auth.user_object, c.auth.encryption, c.auth.port),
                         (("uid", "cn"), "simple_tls", 636))
        assert c.graphite is not None
        self.assertEqual((c.graphite.port, c.graphite.prefix), (2003, "vmpooler"))
        self.assertEqual(c.service.vm_checktime_minutes, 0.05)
        self.assertEqual(c.service.vm_lifetime_auth_hours, 48)
        self.assertEqual(c.service.allowed_tags, ("user", "url"))
        self.assertEqual((c.service.ready_check_port, c.service.ready_check_address), (0, "ip"))
        self.assertEqual(c.tagfilter[0][0], "url")

    def test_environment_overrides_secrets(self) -> None:
        c = parse_config(MINIMAL, {"REDIS_SERVER": "10.0.0.9", "REDIS_PORT": "6390",
                                   "REDIS_PASSWORD": "r3dis", "VSPHERE_PASSWORD": "vs"})
        self.assertEqual((c.redis.server, c.redis.port, c.redis.password,
                          c.provider("vsphere").password), ("10.0.0.9", 6390, "r3dis", "vs"))
        self.assertNotIn("r3dis", repr(c))


class ErrorTests(SynchronousTestCase):
    def assertError(self, text: str, message: str, environ: dict[str, str] | None = None
                    ) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_config(text, environ)
        self.assertEqual(str(caught.exception), message)

    def pool(self, extra: str) -> str:
        return MINIMAL + "  - name: second\n    template: t\n    folder: f\n" \
            "    datastore: d\n" + extra

    def test_pool_keys(self) -> None:
        for size in ("0", "-2", "1.5", "lots"):
            self.assertError(self.pool(f"    size: {size}\n"),
                             ":pools:[1].size: must be a positive integer")
        self.assertError(self.pool(""), ":pools:[1].size: is required")
        self.assertError(MINIMAL.replace("    folder: Pooled VMs/debian-7-i386\n", ""),
                         ":pools:[0].folder: is required")
        self.assertError(self.pool("    size: 1\n    timeout: 0\n"),
                         ":pools:[1].timeout: must be a positive number")
        self.assertError(self.pool("    size: 1\n    alias: [ok]\n"),
                         ":pools:[1].alias[0]: 'ok' is reserved in API answers")

    def test_names(self) -> None:
        self.assertError(MINIMAL.replace("debian-7-i386\n", "debian 7\n", 1),
                         ":pools:[0].name: must be letters, digits, '.', '_' or '-' "
                         "(at most 200), not 'debian 7'")
        self.assertError(self.pool("    size: 1\n").replace("name: second", "name: debian-7-i386"),
                         ":pools:[1].name: 'debian-7-i386' is used twice")
        self.assertError(self.pool("    size: 1\n    alias: debian-7-i386\n"),
                         ":pools:[1].alias: 'debian-7-i386' is already a pool's name")
        same_folder = "folder: /Pooled VMs/debian-7-i386/"
        self.assertError(self.pool("    size: 1\n").replace("folder: f", same_folder),
                         ":pools:[1].folder: '/Pooled VMs/debian-7-i386/' is already the folder "
                         "of pool 'debian-7-i386'")

    def test_ldap_service_account(self) -> None:
        ldap = MINIMAL + ":auth:\n  provider: ldap\n  :ldap:\n    host: h\n    base: b\n"
        for spelling in (":user_dn", "user_dn"):
            config = parse_config(ldap + f"    service_account_hash:\n      {spelling}: cn=svc\n"
                                  "      :password: svc-secret\n")
            assert config.auth is not None and config.auth.service_account is not None
            self.assertEqual(config.auth.service_account.user_dn, "cn=svc")
            self.assertEqual(config.auth.service_account.password, "svc-secret")
            self.assertNotIn("svc-secret", repr(config))
        self.assertError(ldap + "    service_account_hash:\n      user_dn: cn=svc\n",
                         ":auth:.:ldap:.service_account_hash.password: is required")
        self.assertError(ldap + "    service_account_hash: cn=svc\n",
                         ":auth:.:ldap:.service_account_hash: must be a mapping")

    def test_sections(self) -> None:
        self.assertError("just text", "the configuration must be a YAML mapping of sections")
        self.assertError(":pools: [\n", self.yaml_error(":pools: [\n"))
        self.assertError(MINIMAL.replace("  password: swordfish\n", ""),
                         ":vsphere:.password: is required")
        self.assertError(MINIMAL.split(":pools:")[0],
                         ":pools:: must be a list of at least one pool")
        self.assertError(MINIMAL + ":redis: []\n", ":redis:: must be a mapping")
        self.assertError(MINIMAL + ":config:\n  port: 70000\n",
                         ":config:.port: must be a port number (1-65535)")
        self.assertError(MINIMAL + ":config:\n  check_loop_delay_min: 90\n",
                         ":config:.check_loop_delay_max: must not be less than "
                         "check_loop_delay_min")
        self.assertError(MINIMAL + ":config:\n  ready_check_address: dns\n",
                         ":config:.ready_check_address: must be one of hostname, ip")
        self.assertError(MINIMAL + ":auth:\n  provider: ldap\n  :ldap:\n    host: h\n"
                         "    base: b\n    encryption: tls\n",
                         ":auth:.:ldap:.encryption: must be one of start_tls, simple_tls, none")
        self.assertError(MINIMAL + ":auth:\n  provider: kerberos\n",
                         ":auth:.provider: must be one of ldap")
        self.assertError(MINIMAL + ":tagfilter:\n  url: '(unclosed'\n",
                         ":tagfilter:.url: not a regular expression: "
                         "missing ), unterminated subpattern at position 0")
        self.assertError(MINIMAL, "$REDIS_PORT: must be a positive integer", {"REDIS_PORT": "x"})

    def yaml_error(self, text: str) -> str:
        try:
            parse_config(text)
        except ConfigError as e:
            self.assertTrue(str(e).startswith("not valid YAML: "))
            return str(e)
        raise AssertionError("no error")


class PathTests(SynchronousTestCase):
    def test_precedence(self) -> None:
        self.assertEqual(config_path("a.yaml", {"VMPOOLER_CONFIG": "b.yaml"}), "a.yaml")
        self.assertEqual(config_path(None, {"VMPOOLER_CONFIG": "b.yaml"}), "b.yaml")
        self.assertEqual(config_path(None, {}), "etc/vmpooler.yaml")

    def test_unreadable(self) -> None:
        path = self.mktemp()
        with self.assertRaises(ConfigError) as caught:
            read_config(path, {})
        self.assertIn("cannot be read", str(caught.exception))
        with open(path, "w") as f:
            f.write(MINIMAL)
        self.assertEqual(read_config(path, {}).pool_names, ("debian-7-i386",))
        self.assertTrue(os.path.exists(path))


class ShippedFilesTests(SynchronousTestCase):
    def test_etc_files_parse(self) -> None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for name in ("vmpooler.yaml", "vmpooler.yaml.example"):
            config = read_config(os.path.join(here, "etc", name), {})
            self.assertEqual(config.pool_names, ("debian-7-i386", "debian-7-x86_64"))
