"""Generated /etc/hosts and /etc/resolv.conf."""

from __future__ import annotations

from hafen.network.etcfiles import HostEntry, hosts_file, resolv_conf


def test_hosts_file_lists_self_extra_hosts_and_peers() -> None:
    text = hosts_file("kiel", "10.0.0.2", ["db:10.0.0.9"], [HostEntry("10.0.0.3", ["web", "www"])])
    assert "10.0.0.9\tdb\n" in text
    assert "10.0.0.2\tkiel\n" in text
    assert text.endswith("10.0.0.3\tweb www\n")
    assert "127.0.1.1\tkiel" in hosts_file("kiel", "", [], [])


def test_resolv_conf_drops_loopback_servers_and_applies_flags() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch corp\noptions edns0\n"
    assert resolv_conf(host, [], [], []) == "nameserver 10.0.0.1\nsearch corp\noptions edns0\n"
    out = resolv_conf(host, ["9.9.9.9"], ["a.org", "b.org"], ["ndots:3"])
    assert out == "nameserver 9.9.9.9\nsearch a.org b.org\noptions ndots:3\n"
    assert resolv_conf("nameserver 127.0.0.1\n", [], [], []).startswith("nameserver 8.8.8.8")


def test_host_gateway_maps_to_the_given_address() -> None:
    text = hosts_file("h", "10.0.0.2", ["gw:host-gateway", "db:10.1.1.1"], [], "172.17.0.1")
    assert "172.17.0.1\tgw\n" in text and "10.1.1.1\tdb\n" in text
