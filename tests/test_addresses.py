"""Addresses are parsed in one place; a bad one is a ConfigError naming where."""

import pytest

from computefarm import addresses
from computefarm.exceptions import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("tcp://127.0.0.1:5555", ("127.0.0.1", 5555)),
    ("tcp://[::1]:80", ("::1", 80)),
    ("tcp://build-1.example.org:1", ("build-1.example.org", 1)),
    ("tcp://*:5555", ("*", 5555)),
])
def test_split_accepts_tcp_addresses(text, expected):
    assert addresses.split(text) == expected


@pytest.mark.parametrize("text", ["http://x:1", "tcp://x", "tcp://x:0", "tcp://x:70000", 5555,
                                  "tcp://a b:1"])
def test_split_refuses_with_the_place_named(text):
    with pytest.raises(ConfigError, match="^taskmanager.address: expected tcp://HOST:PORT"):
        addresses.split(text, "taskmanager.address")


def test_port_zero_only_where_allowed_and_tcp_brackets_ipv6():
    assert addresses.split("tcp://127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
    assert addresses.tcp("::1", 9) == "tcp://[::1]:9"
    assert addresses.split_host_port("127.0.0.1:19996") == ("127.0.0.1", 19996)
    assert addresses.is_loopback("::1") and not addresses.is_loopback("0.0.0.0")
