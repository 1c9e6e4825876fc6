"""Reading vmpooler's YAML."""

from __future__ import annotations

import glob
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.config import (
    ConfigError, DummyConfig, PrometheusConfig, PurgeConfig, RateLimit, Source, StatsdConfig,
    config_path, find_source, load_config, parse_config, read_config)
from vmpoolerd.config.merge import deep_merge

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
        for size in ("-2", "1.5", "lots"):
            self.assertError(self.pool(f"    size: {size}\n"),
                             ":pools:[1].size: must be an integer >= 0")
        self.assertError(self.pool(""), ":pools:[1].size: is required")
        self.assertError(MINIMAL.replace("    folder: Pooled VMs/debian-7-i386\n", ""),
                         ":pools:[0].folder: is required")
        self.assertError(self.pool("    size: 1\n    timeout: 0\n"),
                         ":pools:[1].timeout: must be a positive number")
        self.assertError(self.pool("    size: 1\n    alias: [ok]\n"),
                         ":pools:[1].alias[0]: 'ok' is reserved in API answers")

    def test_size_policy_keys(self) -> None:
        self.assertError(self.pool("    size: 4\n    size_policy: auto\n"),
                         ":pools:[1].size_policy: must be one of static, demand")
        for rate in ("1", "0", "-0.5", "99%"):
            self.assertError(self.pool(f"    size: 4\n    hit_rate: {rate}\n"),
                             ":pools:[1].hit_rate: must be a " + (
                                 "number between 0 and 1 (such as 0.99), not 1"
                                 if rate == "1" else "positive number"))
        self.assertError(self.pool("    size: 4\n    min_size: 5\n"),
                         ":pools:[1].min_size: pool 'second''s min_size must not be more "
                         "than its size (4)")
        pool = parse_config(self.pool(
            "    size: 40\n    size_policy: demand\n    min_size: 0\n    hit_rate: 0.95\n"
        )).pools[1]
        self.assertEqual((pool.size_policy, pool.min_size, pool.hit_rate, pool.size),
                         ("demand", 0, 0.95, 40))
        first = parse_config(MINIMAL).pools[0]
        self.assertEqual((first.size_policy, first.min_size, first.hit_rate),
                         ("static", 1, 0.99))

    def test_listen(self) -> None:
        for description, why in (("bogus:1", "Unknown endpoint type: 'bogus'"),
                                 ("tcp:port", "invalid literal for int() with base 10: 'port'")):
            self.assertError(MINIMAL + f":config:\n  listen: '{description}'\n",
                             f":config:.listen: not a server endpoint description Twisted can "
                             f"use ({description!r}): {why}")
        config = parse_config(MINIMAL + ":config:\n  listen: 'unix:/x.sock'\n")
        self.assertEqual(config.service.listen, "unix:/x.sock")

    def test_sentinels(self) -> None:
        config = parse_config(MINIMAL + ":redis:\n  sentinels: ['10.0.0.1:26379', "
                              "'[::1]:26380']\n  master_name: pooler\n")
        self.assertEqual((config.redis.sentinels, config.redis.master_name),
                         ((("10.0.0.1", 26379), ("::1", 26380)), "pooler"))
        self.assertEqual(parse_config(MINIMAL + ":redis:\n  sentinels: 's:1'\n"
                                      ).redis.master_name, "mymaster")
        for entry, why in (("'s'", "must be host:port, not 's'"),
                           ("':26379'", "must be host:port, not ':26379'"),
                           ("'s:0'", "must be a positive integer"),
                           ("'s:99999'", "must be a port number (1-65535)")):
            self.assertError(MINIMAL + f":redis:\n  sentinels: [{entry}]\n",
                             f":redis:.sentinels[0]: {why}")
        self.assertError(MINIMAL + ":redis:\n  sentinels: []\n",
                         ":redis:.sentinels: must list at least one Sentinel (host:port)")

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
                         ":pools:: must be a list of at least one pool (the file has none, "
                         "and Redis's vmpooler__pools names none)")
        self.assertError(MINIMAL.split(":pools:")[0] + ":pools: []\n",
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
        self.assertError(MINIMAL, "$REDIS_PORT: must be a whole number", {"REDIS_PORT": "x"})
        self.assertError(MINIMAL, ":redis:.port (from $REDIS_PORT): must be a positive integer",
                         {"REDIS_PORT": "0"})

    def yaml_error(self, text: str) -> str:
        try:
            parse_config(text)
        except ConfigError as e:
            self.assertTrue(str(e).startswith("not valid YAML: "))
            return str(e)
        raise AssertionError("no error")


class PathTests(SynchronousTestCase):
    def test_precedence(self) -> None:
        """--config, else $VMPOOLER_CONFIG (text), else $VMPOOLER_CONFIG_FILE, else the default."""
        text = {"VMPOOLER_CONFIG": MINIMAL}
        self.assertEqual(find_source("a.yaml", {**text, "VMPOOLER_CONFIG_FILE": "c.yaml"}),
                         Source("a.yaml", "a.yaml", ("$VMPOOLER_CONFIG: ignored: --config "
                                                     "names the file",)))
        self.assertEqual(find_source(None, {**text, "VMPOOLER_CONFIG_FILE": "c.yaml"}),
                         Source("$VMPOOLER_CONFIG", None))
        self.assertEqual(find_source(None, {"VMPOOLER_CONFIG_FILE": "c.yaml"}),
                         Source("c.yaml", "c.yaml"))
        self.assertEqual(config_path(None, {}), "etc/vmpooler.yaml")

    def test_the_text_of_vmpooler_config(self) -> None:
        """The text is the configuration: no file, no extra_config is read."""
        environ = {"VMPOOLER_CONFIG": MINIMAL + ":config:\n  extra_config: missing.yaml\n",
                   "EXTRA_CONFIG": "missing.yaml"}
        c = load_config(find_source(None, environ), environ)
        self.assertEqual(c.pool_names, ("debian-7-i386",))

    def test_a_path_in_vmpooler_config_is_still_read(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(MINIMAL)
        environ = {"VMPOOLER_CONFIG": path}
        c = load_config(find_source(None, environ), environ)
        self.assertEqual(c.pool_names, ("debian-7-i386",))
        self.assertIn("VMPOOLER_CONFIG_FILE", c.warnings[0])

    def test_errors_never_quote_the_text(self) -> None:
        for text in (MINIMAL.replace("swordfish", "swordfish\n  : [\""),
                     MINIMAL.replace("size: 5", "size: swordfish"), "swordfish"):
            environ = {"VMPOOLER_CONFIG": text}
            with self.assertRaises(ConfigError) as caught:
                load_config(find_source(None, environ), environ)
            self.assertNotIn("swordfish", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            parse_config(MINIMAL.replace("swordfish", "'swordfish"))
        self.assertRegex(str(caught.exception), r"^not valid YAML: .* at line \d+, column \d+$")
        self.assertNotIn("swordfish", str(caught.exception))

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
        """Every shipped configuration parses, with nothing to warn about."""
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = sorted(glob.glob(os.path.join(here, "etc", "*.yaml*")))
        self.assertEqual([os.path.basename(p) for p in paths],
                         ["vmpooler-3x.yaml.example", "vmpooler.yaml", "vmpooler.yaml.example"])
        for path in paths:
            config = read_config(path, {})
            self.assertEqual(config.pool_names, ("debian-7-i386", "debian-7-x86_64"))
            self.assertEqual(config.warnings, ())

    def test_the_3x_example(self) -> None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        c = read_config(os.path.join(here, "etc", "vmpooler-3x.yaml.example"), {})
        self.assertEqual([name for name, _ in c.providers], ["vsphere", "vsphere-ams"])
        self.assertEqual([(p.provider, c.domain_for(p.name), c.linked_clones(p.name))
                          for p in c.pools],
                         [("vsphere", "pdx.example.com", True),
                          ("vsphere-ams", "ams.example.com", True)])


POOL_3X = """
:pools:
  - name: a
    template: T/a
    folder: F/a
    datastore: ds
    size: 1
"""

PROVIDERS = """
:providers:
  :vsphere:
    server: vc1.example.com
    username: u
    password: p1
  :vsphere-ams:
    provider_class: vsphere
    server: vc2.example.com
    username: u
    password: p2
    datacenter: AMS
    port: 8443
"""


class ThreeXTests(SynchronousTestCase):
    """vmpooler 3.x files."""

    def assertError(self, text: str, message: str) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_config(text)
        self.assertEqual(str(caught.exception), message)

    def test_providers(self) -> None:
        c = parse_config(PROVIDERS + POOL_3X + "    provider: vsphere-ams\n    datacenter: X\n"
                         "  - name: b\n    template: T/b\n    folder: F/b\n    datastore: ds\n"
                         "    size: 1\n")
        self.assertEqual([name for name, _ in c.providers], ["vsphere", "vsphere-ams"])
        ams = c.provider("vsphere-ams")
        self.assertEqual((ams.server, ams.port, ams.datacenter, ams.insecure),
                         ("vc2.example.com", 8443, "AMS", False))
        self.assertEqual([(p.provider, p.datacenter) for p in c.pools],
                         [("vsphere-ams", "X"), ("vsphere", None)])
        self.assertNotIn("p2", repr(c))
        self.assertEqual(c.warnings, ())

    def test_a_pool_takes_the_only_provider(self) -> None:
        only = ":providers:\n  :pdx:\n    provider_class: vsphere\n    server: s\n" \
            "    username: u\n    password: p\n"
        self.assertEqual(parse_config(only + POOL_3X).pools[0].provider, "pdx")

    def test_pools_on_two_vcenters_may_have_folders_of_the_same_name(self) -> None:
        c = parse_config(PROVIDERS + POOL_3X + "  - name: b\n    template: T/b\n"
                         "    folder: F/a\n    datastore: ds\n    size: 1\n"
                         "    provider: vsphere-ams\n")
        self.assertEqual(c.pool_names, ("a", "b"))

    def test_the_2016_vsphere_beside_providers(self) -> None:
        legacy = MINIMAL.split(":pools:")[0]
        others = PROVIDERS.replace("  :vsphere:\n", "  :unused:\n    provider_class: vsphere\n")
        c = parse_config(legacy + others + POOL_3X, {"VSPHERE_PASSWORD": "env"})
        self.assertEqual([name for name, _ in c.providers], ["vsphere"])
        c = parse_config(legacy + others + POOL_3X + "  - name: b\n    template: T/b\n"
                         "    folder: F/b\n    datastore: ds\n    size: 1\n"
                         "    provider: vsphere-ams\n", {"VSPHERE_PASSWORD": "env"})
        self.assertEqual([name for name, _ in c.providers], ["vsphere", "vsphere-ams"])
        self.assertEqual(c.notices, ("provider 'unused' (class 'vsphere'): no pool uses it; "
                                     "left alone",))
        self.assertEqual((c.provider("vsphere").server, c.provider("vsphere").password),
                         ("vcenter.example.com", "env"))
        self.assertEqual(c.provider("vsphere-ams").password, "p2")
        # :providers: names its own vsphere: the 2016 section is ignored, and said so.
        c = parse_config(legacy + PROVIDERS + POOL_3X, {"VSPHERE_PASSWORD": "env"})
        self.assertEqual((c.provider("vsphere").server, c.provider("vsphere").password),
                         ("vc1.example.com", "p1"))
        self.assertEqual(c.warnings, (
            ":vsphere:: ignored: :providers: has a provider named 'vsphere'",))

    def test_provider_errors(self) -> None:
        self.assertError(POOL_3X, ":vsphere:: is required (or :providers:)")
        ams = POOL_3X + "    provider: vsphere-ams\n"
        self.assertError(PROVIDERS.replace("provider_class: vsphere", "provider_class: ec2")
                         + ams, ":pools:[0].provider: the pool's provider 'vsphere-ams' is of "
                         "class 'ec2', which vmpoolerd does not serve (it serves vsphere, dummy)")
        self.assertError(PROVIDERS.replace("    provider_class: vsphere\n", "") + ams,
                         ":pools:[0].provider: the pool's provider 'vsphere-ams' is of class "
                         "'vsphere-ams', which vmpoolerd does not serve (it serves vsphere, "
                         "dummy)")
        self.assertError(PROVIDERS.replace("    server: vc2.example.com\n", "") + ams,
                         ":providers:.:vsphere-ams:.server: is required")
        # Providers no pool uses are left alone, whatever their class or keys.
        c = parse_config(PROVIDERS.replace("provider_class: vsphere", "provider_class: ec2")
                         .replace("    server: vc2.example.com\n", "") + POOL_3X)
        self.assertEqual((c.pool_names, c.warnings), (("a",), ()))
        self.assertError(PROVIDERS + POOL_3X + "    provider: vsphere-lon\n",
                         ":pools:[0].provider: pool 'a' names the provider 'vsphere-lon'; "
                         "the providers are vsphere, vsphere-ams")
        two = PROVIDERS.replace("  :vsphere:\n", "  :pdx:\n    provider_class: vsphere\n")
        self.assertError(two + POOL_3X, ":pools:[0].provider: pool 'a' names the provider "
                         "'vsphere'; the providers are pdx, vsphere-ams")
        self.assertError(":providers: [a]\n" + POOL_3X, ":providers:: must be a mapping")

    DNS = """
:dns_configs:
  :pdx:
    dns_class: dynamic-dns
    domain: pdx.example.com
  :bare:
    dns_class: dynamic-dns
  :cloud:
    dns_class: gcp
    domain: gcp.example.com
:config:
  domain: example.com
"""

    def pools(self, *plugins: str) -> str:
        return ":pools:\n" + "".join(
            f"  - name: p{i}\n    template: T/{i}\n    folder: F/{i}\n    datastore: ds\n"
            f"    size: 1\n" + (f"    dns_plugin: {plugin}\n" if plugin else "")
            for i, plugin in enumerate(plugins))

    def test_dns_configs(self) -> None:
        c = parse_config(PROVIDERS + self.DNS + self.pools("pdx", "bare", "cloud", ""))
        self.assertEqual([p.domain for p in c.pools],
                         ["pdx.example.com", None, "gcp.example.com", None])
        self.assertEqual([c.domain_for(p) for p in c.pool_names],
                         ["pdx.example.com", "example.com", "gcp.example.com", "example.com"])
        self.assertEqual(c.warnings, (
            ":dns_configs:.:cloud:.dns_class: 'gcp' is not served: vmpoolerd registers no "
            "names (as with dynamic-dns); its domain still applies",))

    def test_dns_errors(self) -> None:
        self.assertError(PROVIDERS + self.DNS + self.pools("lon"),
                         ":pools:[0].dns_plugin: pool 'p0' names the DNS config 'lon', which "
                         ":dns_configs: does not have")
        self.assertError(PROVIDERS + self.pools("lon"),
                         ":pools:[0].dns_plugin: pool 'p0' names the DNS config 'lon', which "
                         ":dns_configs: does not have")
        self.assertError(PROVIDERS + ":dns_configs:\n  :pdx:\n    domain: d\n"
                         + self.pools(""), ":dns_configs:.:pdx:.dns_class: is required")

    def test_3x_service_keys(self) -> None:
        s = parse_config(PROVIDERS + POOL_3X).service
        self.assertEqual((s.experimental_features, s.max_ondemand_instances_per_request,
                          s.ondemand_clone_limit, s.ondemand_request_ttl_minutes,
                          s.create_linked_clones, s.purge_unconfigured_resources,
                          s.resources_allowlist), (False, 10, 10, 5.0, True, False, ()))
        c = parse_config(PROVIDERS + POOL_3X + "    create_linked_clone: false\n"
                         "  - name: b\n    template: T/b\n    folder: F/b\n    datastore: ds\n"
                         "    size: 1\n" + ":config:\n  experimental_features: true\n"
                         "  max_ondemand_instances_per_request: 3\n  ondemand_clone_limit: 2\n"
                         "  ondemand_request_ttl: 0.5\n  create_linked_clones: true\n"
                         "  purge_unconfigured_resources: true\n"
                         "  resources_allowlist: [keep, templates]\n"
                         "  max_lifetime_upper_limit: 48\n  check_loop_delay_max: 30\n")
        s = c.service
        self.assertEqual((s.experimental_features, s.max_ondemand_instances_per_request,
                          s.ondemand_clone_limit, s.ondemand_request_ttl_minutes,
                          s.create_linked_clones, s.purge_unconfigured_resources,
                          s.resources_allowlist, s.max_lifetime_upper_limit_hours,
                          s.check_loop_delay_max),
                         (True, 3, 2, 0.5, True, True, ("keep", "templates"), 48, 30.0))
        self.assertEqual((c.linked_clones("a"), c.linked_clones("b")), (False, True))
        self.assertEqual(c.warnings, ())

    def test_3x_bad_values(self) -> None:
        for key, value, problem in (
                ("experimental_features", "'yes'", "must be true or false"),
                ("max_ondemand_instances_per_request", "0", "must be a positive integer"),
                ("ondemand_clone_limit", "-1", "must be a positive integer"),
                ("ondemand_request_ttl", "0", "must be a positive number"),
                ("create_linked_clones", "1", "must be true or false"),
                ("purge_unconfigured_resources", "'on'", "must be true or false"),
                ("resources_allowlist", "[]", "must not be empty")):
            self.assertError(PROVIDERS + POOL_3X + f":config:\n  {key}: {value}\n",
                             f":config:.{key}: {problem}")
        self.assertError(PROVIDERS + POOL_3X + "    create_linked_clone: 'no'\n",
                         ":pools:[0].create_linked_clone: must be true or false")

    LDAP = ":auth:\n  provider: ldap\n  :ldap:\n    host: h\n    base: b\n"

    def test_ldap_encryption_as_net_ldap_writes_it(self) -> None:
        for method in ("simple_tls", "start_tls"):
            c = parse_config(MINIMAL + self.LDAP + f"    encryption:\n      :method: :{method}\n")
            assert c.auth is not None
            self.assertEqual((c.auth.encryption, c.warnings), (method, ()))
        c = parse_config(MINIMAL + self.LDAP + "    encryption:\n      :method: :simple_tls\n"
                         "      :tls_options:\n        :ssl_version: TLSv1_2\n")
        self.assertEqual(c.warnings,
                         (":auth:.:ldap:.encryption.tls_options: unknown key, ignored",))
        self.assertError(MINIMAL + self.LDAP + "    encryption:\n      :method: :plain\n",
                         ":auth:.:ldap:.encryption.method: must be one of simple_tls, start_tls")
        self.assertError(MINIMAL + self.LDAP + "    encryption:\n      :tls_options: {}\n",
                         ":auth:.:ldap:.encryption.method: is required")

    def test_unknown_keys_are_reported_with_their_path(self) -> None:
        c = parse_config(PROVIDERS.replace("    port: 8443\n", "    connection_pool_size: 4\n")
                         + POOL_3X + "    snapshot_mainMem_ioBlockPages: 2048\n"
                         "    provider: vsphere-ams\n"
                         ":config:\n  utilisation_limit: 3\n  max_tries: 2\n"
                         ":statsd:\n  server: s\n  flush: 1\n"
                         ":redis:\n  connection_pool_size: 2\n" + self.LDAP + "    tls: 1\n")
        served = "read by vmpooler 3.x, not served by vmpoolerd; ignored"
        self.assertEqual(c.warnings, (
            f":redis:.connection_pool_size: {served} (vmpoolerd keeps its own connections)",
            f":config:.max_tries: {served}",
            f":pools:[0].snapshot_mainMem_ioBlockPages: {served}",
            ":providers:.:vsphere-ams:.connection_pool_size: unknown key, ignored",
            ":config:.utilisation_limit: unknown key, ignored",
            ":auth:.:ldap:.tls: unknown key, ignored",
            ":statsd:.flush: unknown key, ignored"))

    def test_a_known_key_with_a_bad_value_is_still_an_error(self) -> None:
        self.assertError(PROVIDERS.replace("port: 8443", "port: many") + POOL_3X
                         + "    provider: vsphere-ams\n",
                         ":providers:.:vsphere-ams:.port: must be a positive integer")


class ExtraConfigTests(SynchronousTestCase):
    def write(self, directory: str, name: str, text: str) -> str:
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.dir, "conf.d"))
        self.write(self.dir, "pools.yaml", POOL_3X.replace("name: a", "name: extra")
                   .replace("F/a", "F/extra"))
        self.write(self.dir, "conf.d/redis.yaml", ":redis:\n  server: redis.example.com\n")
        self.write(self.dir, "conf.d/redis2.yaml", "redis:\n  port: 6390\n")

    def main(self, extra: str) -> str:
        return self.write(self.dir, "vmpooler.yaml",
                          PROVIDERS + POOL_3X + f":config:\n  extra_config: {extra}\n")

    def test_files_are_merged_as_3x_merges(self) -> None:
        """Hashes key by key, lists joined, the main file's values kept where both set one."""
        c = read_config(self.main("pools.yaml,conf.d/redis.yaml"), {})
        self.assertEqual((c.pool_names, c.redis.server), (("a", "extra"), "redis.example.com"))
        self.assertEqual(c.warnings, ())
        c = read_config(self.main("[conf.d/redis.yaml, conf.d/redis2.yaml]"), {})
        self.assertEqual((c.pool_names, c.redis.server, c.redis.port),
                         (("a",), "redis.example.com", 6390))
        # An extra :config: adds its keys; it does not wipe the main one's.
        self.write(self.dir, "config.yaml", ":config:\n  task_limit: 3\n  site_name: extra\n")
        main = self.write(self.dir, "main.yaml", PROVIDERS + POOL_3X + ":config:\n"
                          "  site_name: main\n  extra_config: config.yaml\n")
        c = read_config(main, {})
        self.assertEqual((c.service.site_name, c.service.task_limit), ("main", 3))

    def test_extra_config_from_the_environment(self) -> None:
        """$EXTRA_CONFIG replaces :config: extra_config; relative to the working directory."""
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(self.dir)
        c = read_config(self.main("missing.yaml"), {"EXTRA_CONFIG": "conf.d/redis.yaml"})
        self.assertEqual(c.redis.server, "redis.example.com")

    def test_an_absolute_path(self) -> None:
        absolute = os.path.abspath(os.path.join(self.dir, "pools.yaml"))
        self.assertEqual(read_config(self.main(absolute), {}).pool_names, ("a", "extra"))

    def test_errors_name_the_file(self) -> None:
        for extra, message in (
                ("missing.yaml", ":config:.extra_config: missing.yaml: cannot be read: "
                                 "No such file or directory"),
                ("'pools.yaml,'", ":config:.extra_config[1]: must not be empty")):
            with self.assertRaises(ConfigError) as caught:
                read_config(self.main(extra), {})
            self.assertEqual(str(caught.exception), message)
        self.write(self.dir, "bad.yaml", "- a list\n")
        with self.assertRaises(ConfigError) as caught:
            read_config(self.main("bad.yaml"), {})
        self.assertEqual(str(caught.exception), ":config:.extra_config: bad.yaml: the "
                         "configuration must be a YAML mapping of sections")


class MergeTests(SynchronousTestCase):
    def test_deep_merge_as_3x(self) -> None:
        main: dict[str, Any] = {":config": {"site_name": "main", "off": False, "tags": ["a"]},
                ":pools": [{"name": "a"}]}
        extra = {":config:": {"site_name": "extra", "off": True, "task_limit": 3,
                              "tags": ["a", "b"]},
                 "pools": [{"name": "a"}, {"name": "b"}], ":statsd": {"server": "s"}}
        self.assertEqual(deep_merge(main, extra), {
            ":config": {"site_name": "main", "off": True, "tags": ["a", "b"], "task_limit": 3},
            ":pools": [{"name": "a"}, {"name": "b"}], ":statsd": {"server": "s"}})
        self.assertEqual(main[":config"]["site_name"], "main")  # unchanged
        self.assertEqual(deep_merge({"a": [1]}, {"a": {"b": 1}}), {"a": [1]})
        self.assertEqual(deep_merge({"a": 1}, {"a": None}), {"a": 1})


class EnvironmentTests(SynchronousTestCase):
    def test_every_variable_reaches_its_key_typed(self) -> None:
        c = parse_config(PROVIDERS + POOL_3X + ":auth:\n  provider: ldap\n  :ldap:\n"
                         "    host: h\n    base: b\n", {
                             "TASK_LIMIT": "4", "VM_CHECKTIME": "2", "READY_TTL": "0.5",
                             "MAX_LIFETIME_UPPER_LIMIT": "48", "PREFIX": "ci-",
                             "SITE_NAME": "env", "EXPERIMENTAL_FEATURES": "TRUE",
                             "CREATE_LINKED_CLONES": "false",
                             "PURGE_UNCONFIGURED_RESOURCES": "true",
                             "REDIS_DATA_TTL": "24", "STATSD_SERVER": "statsd",
                             "STATSD_PORT": "9125", "GRAPHITE_SERVER": "g",
                             "LDAP_HOST": "ldap.example.com", "LDAP_PORT": "636",
                             "LDAP_BASE": "dc=example", "LDAP_USER_OBJECT": "cn"})
        s = c.service
        self.assertEqual((s.task_limit, s.vm_checktime_minutes, s.ready_ttl_minutes,
                          s.max_lifetime_upper_limit_hours, s.prefix, s.site_name,
                          s.experimental_features, s.create_linked_clones,
                          s.purge_unconfigured_resources, c.redis.data_ttl_hours),
                         (4, 2.0, 0.5, 48, "ci-", "env", True, False, True, 24.0))
        assert c.statsd is not None and c.graphite is not None and c.auth is not None
        self.assertEqual((c.statsd.server, c.statsd.port, c.graphite.server),
                         ("statsd", 9125, "g"))
        self.assertEqual((c.auth.host, c.auth.port, c.auth.base, c.auth.user_object),
                         ("ldap.example.com", 636, ("dc=example",), ("cn",)))
        self.assertTrue(c.purge_for("vsphere").enabled)

    def test_empty_is_unset_and_bad_values_name_the_variable(self) -> None:
        self.assertEqual(parse_config(MINIMAL, {"TASK_LIMIT": ""}).service.task_limit, 10)
        for variable, value, message in (
                ("TASK_LIMIT", "many", "$TASK_LIMIT: must be a whole number"),
                ("TASK_LIMIT", "0", ":config:.task_limit (from $TASK_LIMIT): must be a "
                                    "positive integer"),
                ("READY_TTL", "soon", "$READY_TTL: must be a number"),
                ("PURGE_UNCONFIGURED_RESOURCES", "yes",
                 "$PURGE_UNCONFIGURED_RESOURCES: must be true or false"),
                ("REDIS_RECONNECT_ATTEMPTS", "[1,", "$REDIS_RECONNECT_ATTEMPTS: must be JSON "
                                                   "(a number or a list)")):
            with self.assertRaises(ConfigError) as caught:
                parse_config(MINIMAL, {variable: value})
            self.assertEqual(str(caught.exception), message)

    def test_the_older_purge_variable_wins_and_is_named(self) -> None:
        c = parse_config(MINIMAL, {"PURGE_UNCONFIGURED_RESOURCES": "false",
                                   "PURGE_UNCONFIGURED_FOLDERS": "true"})
        self.assertTrue(c.service.purge_unconfigured_resources)
        self.assertIn("$PURGE_UNCONFIGURED_FOLDERS: an older name (3.x deprecates it): "
                      "use $PURGE_UNCONFIGURED_RESOURCES", c.warnings)

    def test_a_variable_for_a_missing_section(self) -> None:
        c = parse_config(MINIMAL, {"STATSD_PORT": "1"})
        self.assertIsNone(c.statsd)
        self.assertIn("$STATSD_PORT: ignored: the file has no :statsd: section for it to "
                      "change", c.warnings)


class GenerationDefaultsTests(SynchronousTestCase):
    def test_each_layout_gets_its_generations_defaults(self) -> None:
        old, new = parse_config(MINIMAL).service, parse_config(PROVIDERS + POOL_3X).service
        self.assertEqual((old.vm_checktime_minutes, old.ready_ttl_minutes,
                          old.create_linked_clones, old.max_lifetime_upper_limit_hours),
                         (15.0, None, False, 336))
        self.assertEqual((new.vm_checktime_minutes, new.ready_ttl_minutes,
                          new.create_linked_clones, new.max_lifetime_upper_limit_hours),
                         (1.0, 60.0, True, None))
        self.assertEqual((new.task_limit, new.ondemand_clone_limit, new.vm_lifetime_hours,
                          new.ondemand_request_ttl_minutes, new.prefix),
                         (10, 10, 24.0, 5.0, ""))
        # The file's keys win over either generation's defaults.
        c = parse_config(PROVIDERS + POOL_3X + ":config:\n  create_linked_clones: false\n")
        self.assertFalse(c.linked_clones("a"))


class ProviderKeysTests(SynchronousTestCase):
    def test_purge_per_provider(self) -> None:
        c = parse_config(PROVIDERS.replace(
            "    port: 8443\n", "    port: 8443\n    purge_unconfigured_resources: true\n"
            "    folder_whitelist: [old]\n    resources_allowlist: [keep]\n")
            + POOL_3X + "  - name: b\n    template: T/b\n    folder: F/b\n    datastore: ds\n"
            "    size: 1\n    provider: vsphere-ams\n"
            ":config:\n  resources_allowlist: [everywhere]\n")
        self.assertEqual(c.purge_for("vsphere-ams"),
                         PurgeConfig(True, ("old", "keep", "everywhere")))
        self.assertEqual(c.purge_for("vsphere"), PurgeConfig(False, ("everywhere",)))
        # The global switch is the fallback; a provider's false stands.
        c = parse_config(PROVIDERS.replace("    port: 8443\n", "    port: 8443\n"
                                           "    purge_unconfigured_resources: false\n")
                         + POOL_3X + "  - name: b\n    template: T/b\n    folder: F/b\n"
                         "    datastore: ds\n    size: 1\n    provider: vsphere-ams\n"
                         ":config:\n  purge_unconfigured_resources: true\n")
        self.assertEqual((c.purge_for("vsphere").enabled, c.purge_for("vsphere-ams").enabled),
                         (True, False))

    def test_dummy_options(self) -> None:
        c = parse_config(":providers:\n  :dummy:\n    filename: f.yaml\n"
                         "    createvm_max_time: 30\n    createvm_fail_percent: 5\n"
                         "    vmready_fail_percent: 0\n" + POOL_3X)
        self.assertEqual(c.dummy("dummy"), DummyConfig(
            filename="f.yaml", createvm_max_time=30.0, createvm_fail_percent=5,
            vmready_fail_percent=0))
        self.assertEqual(c.providers, ())
        with self.assertRaises(ConfigError) as caught:
            parse_config(":providers:\n  :dummy:\n    createvm_fail_percent: 101\n" + POOL_3X)
        self.assertEqual(str(caught.exception), ":providers:.:dummy:.createvm_fail_percent: "
                         "must be a percentage (0-100)")

    def test_size_zero(self) -> None:
        pool = parse_config(MINIMAL.replace("size: 5", "size: 0")).pools[0]
        self.assertEqual((pool.size, pool.min_size), (0, 0))


class MonitoringKeysTests(SynchronousTestCase):
    def test_statsd_prometheus_rate_limits_hostname_checks(self) -> None:
        c = parse_config(MINIMAL + "    check_hostname_for_mismatch: false\n"
                         ":statsd:\n  server: s\n:prometheus:\n  prometheus_endpoint: /m\n"
                         "  prometheus_prefix: vp\n"
                         ":rate_limits:\n  :vm_creation:\n    :limit: 5\n    :period: 10\n"
                         ":config:\n  rate_limiting_enabled: true\n"
                         "  check_ready_vm_hostname_for_mismatch: true\n")
        self.assertEqual(c.statsd, StatsdConfig("s", 8125, "vmpooler"))
        self.assertEqual(c.prometheus, PrometheusConfig("/m", "vp", "vmpooler"))
        self.assertEqual((c.rate_limit("vm_creation"), c.rate_limit("vm_deletion"),
                          c.rate_limit("other")),
                         (RateLimit(5, 10), RateLimit(50, 60), RateLimit(100, 60)))
        self.assertTrue(c.service.rate_limiting_enabled)
        self.assertFalse(c.checks_hostname("debian-7-i386"))
        self.assertEqual(c.warnings, ())
        for text, message in (
                (":statsd:\n  port: 1\n", ":statsd:.server: is required"),
                (":prometheus:\n  prometheus_endpoint: metrics\n",
                 ":prometheus:.prometheus_endpoint: must be a path starting with '/', "
                 "not 'metrics'"),
                (":rate_limits:\n  :vm_creation:\n    limit: 5\n",
                 ":rate_limits:.:vm_creation:.period: is required")):
            with self.assertRaises(ConfigError) as caught:
                parse_config(MINIMAL + text)
            self.assertEqual(str(caught.exception), message)
