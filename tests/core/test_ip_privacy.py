import pytest

from core.ip_privacy import truncate_ip


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        ("10.255.255.255", "10.255.255.0"),
        ("0.0.0.1", "0.0.0.0"),
        (" 198.51.100.9 ", "198.51.100.0"),
        ("2001:db8:abcd:12:34:56:78:9a", "2001:db8:abcd::"),
        ("2001:0DB8:ABCD:FFFF::1", "2001:db8:abcd::"),
        ("2001:db8::1", "2001:db8::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),  # the zone goes too
        ("::ffff:198.51.100.9", "198.51.100.0"),  # IPv4 written as IPv6: its /24, not a /48 of zeros
    ],
)
def test_addresses_keep_their_network_only(raw, stored):
    assert truncate_ip(raw) == stored


@pytest.mark.parametrize("raw", [None, "", " ", "1.2.3", "256.1.1.1", "1.2.3.4/24", "2001:db8::g", "example.com", "1.2.3.4, 5.6.7.8"])
def test_anything_else_is_none(raw):
    assert truncate_ip(raw) is None
