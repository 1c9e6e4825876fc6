"""Note [Client addresses] in vmpoolerd/api/clients.py: pure."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.api.clients import TrustedProxies, client_group
from vmpoolerd.config import ConfigError

from .fixtures import make_config

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "2001:db8:ffff::1", "unix"])


def v4(host: str) -> IPv4Address:
    return IPv4Address("TCP", host, 4000)


def v6(host: str) -> IPv6Address:
    return IPv6Address("TCP", host, 4000)


class GroupTests(SynchronousTestCase):
    def test_ipv6_is_grouped_by_its_64(self) -> None:
        one = client_group(v6("2001:db8:1:2::1"), [], TrustedProxies())
        self.assertEqual(one, "2001:db8:1:2::/64")
        self.assertEqual(client_group(v6("2001:db8:1:2:ffff:1:2:3"), [], TrustedProxies()), one)
        self.assertNotEqual(client_group(v6("2001:db8:1:3::1"), [], TrustedProxies()), one)

    def test_ipv4_is_itself_also_mapped(self) -> None:
        self.assertEqual(client_group(v4("192.0.2.1"), [], TrustedProxies()), "192.0.2.1")
        self.assertEqual(client_group(v6("::ffff:192.0.2.1"), [], TrustedProxies()),
                         "192.0.2.1")

    def test_forwarded_ipv6_is_grouped_too(self) -> None:
        self.assertEqual(client_group(v4("10.1.1.1"), [b"2001:db8:5:6::7"], PROXIES),
                         "2001:db8:5:6::/64")


class ProxyTests(SynchronousTestCase):
    def test_an_untrusted_peers_header_is_ignored(self) -> None:
        self.assertEqual(client_group(v4("192.0.2.1"), [b"198.51.100.1"], PROXIES),
                         "192.0.2.1")

    def test_the_rightmost_untrusted_address_is_the_client(self) -> None:
        header = [b"203.0.113.9, 198.51.100.1", b"10.2.2.2"]
        self.assertEqual(client_group(v4("10.1.1.1"), header, PROXIES), "198.51.100.1")

    def test_all_trusted_the_leftmost_no_header_the_proxy(self) -> None:
        self.assertEqual(client_group(v4("10.1.1.1"), [b"10.3.3.3, 10.2.2.2"], PROXIES),
                         "10.3.3.3")
        self.assertEqual(client_group(v4("10.1.1.1"), [], PROXIES), "10.1.1.1")

    def test_garbage_ends_the_walk_at_the_last_trusted_hop(self) -> None:
        self.assertEqual(client_group(v4("10.1.1.1"), [b"198.51.100.1, nonsense, 10.2.2.2"],
                                      PROXIES), "10.2.2.2")

    def test_the_unix_socket(self) -> None:
        peer = UNIXAddress(None)
        self.assertEqual(client_group(peer, [b"198.51.100.1"], TrustedProxies()), "unix")
        self.assertEqual(client_group(peer, [b"198.51.100.1"], PROXIES), "198.51.100.1")
        self.assertEqual(client_group(peer, [], PROXIES), "unix")

    def test_ipv6_proxy(self) -> None:
        self.assertEqual(client_group(v6("2001:db8:ffff::1"), [b"[2001:db8:9::1]"], PROXIES),
                         "2001:db8:9::/64")


class ConfigTests(SynchronousTestCase):
    def test_read_from_config(self) -> None:
        config = make_config(trusted_proxies=["10.0.0.1", "fd00::/8", "unix"])
        self.assertEqual(config.service.trusted_proxies, ("10.0.0.1/32", "fd00::/8", "unix"))
        self.assertEqual(make_config().service.trusted_proxies, ())

    def test_bad_entry(self) -> None:
        with self.assertRaises(ConfigError) as raised:
            make_config(trusted_proxies=["proxy.example.com"])
        self.assertIn("trusted_proxies[0]", str(raised.exception))
