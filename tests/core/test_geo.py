import pytest

from core.geo import client_ip, country_of_ip, normalize_country, visitor_country


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("us", "US"), (b"GB", "GB"), ("XX", None), (b"T1", None), ("A1", None), ("", None), (None, None),
     ("USA", None), ("1A", None), (b"\xc3\xa9", None), ("u\n", None)],
)
def test_normalize_country(raw, expected):
    assert normalize_country(raw) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded", "trust", "expected"),
    [
        ("203.0.113.9", None, False, "203.0.113.9"),
        ("203.0.113.9", b"198.51.100.1, 10.0.0.1", False, "203.0.113.9"),
        ("203.0.113.9", b" 198.51.100.1 , 10.0.0.1", True, "198.51.100.1"),
        ("203.0.113.9", b"2001:DB8::1", True, "2001:db8::1"),
        ("203.0.113.9", b"not-an-ip\r\nX: y", True, None),
        ("203.0.113.9", b"\xff", True, None),
        ("203.0.113.9", None, True, "203.0.113.9"),
        (None, None, False, None),
        ("testclient", None, False, None),
    ],
)
def test_client_ip(peer, forwarded, trust, expected):
    assert client_ip(peer, forwarded, trust) == expected


def test_country_from_the_offline_database():
    assert country_of_ip("8.8.8.8") == "US"
    assert country_of_ip("81.2.69.160") == "GB"
    assert country_of_ip("10.0.0.1") is None
    assert country_of_ip(None) is None


def test_trusted_header_wins_and_bad_header_falls_back_to_the_database():
    assert visitor_country(b"de", "8.8.8.8") == "DE"
    assert visitor_country(b"XX", "8.8.8.8") == "US"
    assert visitor_country(None, "127.0.0.1") is None
