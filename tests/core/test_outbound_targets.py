"""The SSRF guard, by table: which tenant-typed URLs and which addresses the delivery worker
may reach, and what the tenant is told when it may not. Lookups come from a fake resolver,
except for ``localhost`` (there is no internet here)."""

from __future__ import annotations

import ipaddress

import pytest

from core.outbound_targets import (
    OutboundPolicy, Target, UnsafeTarget, check_address, parse_url, resolve_target, system_resolver,
)

DEFAULT = OutboundPolicy()
PUBLIC = "93.184.216.34"
# An operator with receivers inside, who also (wrongly) lists ranges that hold metadata and multicast.
INSIDE = OutboundPolicy(allowed_ports=frozenset({80, 443, 8080}), allow_networks=tuple(map(ipaddress.ip_network, (
    "127.0.0.0/8", "10.0.0.0/8", "fd00::/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/4"))))


class FakeResolver:
    def __init__(self, answer: list[str] | Exception):
        self.answer = answer
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)


def refusal(call, *args) -> str:
    with pytest.raises(UnsafeTarget) as caught:
        call(*args)
    assert caught.value.code == "unsafe_url"
    return caught.value.message


async def async_refusal(coro) -> str:
    with pytest.raises(UnsafeTarget) as caught:
        await coro
    assert caught.value.code == "unsafe_url"
    return caught.value.message


@pytest.mark.parametrize("url, expected", [
    ("https://example.com/hook", ("https", "example.com", 443, "/hook")),
    ("HTTP://Example.COM", ("http", "example.com", 80, "/")),
    ("HttpS://example.com/Case/Kept", ("https", "example.com", 443, "/Case/Kept")),
    ("http://example.com:80/", ("http", "example.com", 80, "/")),
    ("https://example.com:80/", ("https", "example.com", 80, "/")),  # an allowed port, whatever the scheme
    ("https://example.com:443/a?b=1#fragment", ("https", "example.com", 443, "/a?b=1")),
    ("http://hooks.example.com/p?x=1&y=2", ("http", "hooks.example.com", 80, "/p?x=1&y=2")),
    ("http://example.com?x=1", ("http", "example.com", 80, "/?x=1")),
    ("http://example.com/p?", ("http", "example.com", 80, "/p")),
    ("http://example.com/a@b/%41?c=%20", ("http", "example.com", 80, "/a@b/%41?c=%20")),
    ("http://example.com/café?q=ü", ("http", "example.com", 80, "/caf%C3%A9?q=%C3%BC")),
    ("http://example.com/a|b", ("http", "example.com", 80, "/a%7Cb")),
    ("http://example.com./", ("http", "example.com", 80, "/")),
    ("http://123.example.com/", ("http", "123.example.com", 80, "/")),
    ("http://0x7f.example.com/", ("http", "0x7f.example.com", 80, "/")),
    ("http://a-b.example/", ("http", "a-b.example", 80, "/")),
    ("http://receiver/", ("http", "receiver", 80, "/")),
    ("http://bücher.example/", ("http", "xn--bcher-kva.example", 80, "/")),
    ("http://ＥＸＡＭＰＬＥ.com/", ("http", "example.com", 80, "/")),
    ("http://127.0.0.1/", ("http", "127.0.0.1", 80, "/")),  # well-formed; the address check refuses it
    ("http://93.184.216.34./x", ("http", "93.184.216.34", 80, "/x")),
    ("https://[2606:2800:0220:0001:0248:1893:25C8:1946]/x", ("https", "2606:2800:220:1:248:1893:25c8:1946", 443, "/x")),
    ("http://[::1]:80/", ("http", "::1", 80, "/")),
    ("http://" + "a" * 63 + ".example/", ("http", "a" * 63 + ".example", 80, "/")),
    ("http://" + ".".join(["a" * 60] * 4) + "." + "b" * 9 + "/",  # 253 characters, the most a name may have
     ("http", ".".join(["a" * 60] * 4) + "." + "b" * 9, 80, "/")),
])
def test_parse_url_takes_apart_what_it_accepts(url, expected):
    assert parse_url(url, DEFAULT) == expected


def test_an_explicit_port_from_the_allowed_list_is_kept():
    policy = OutboundPolicy(allowed_ports=frozenset({8443}))
    assert parse_url("https://example.com:8443/x", policy) == ("https", "example.com", 8443, "/x")
    assert "port 443 is not allowed (allowed: 8443)" in refusal(parse_url, "https://example.com/x", policy)


@pytest.mark.parametrize("url, message", [
    (None, "URL must be a non-empty string"),
    (b"http://example.com/", "URL must be a non-empty string"),
    ("", "URL must be a non-empty string"),
    ("http://example.com/" + "a" * 2030, "URL is 2049 characters long; the limit is 2048"),
    ("http://example.com/a b", "whitespace or a control character at position 20"),
    (" http://example.com/", "whitespace or a control character at position 0"),
    ("http://example.com/\t", "whitespace or a control character"),
    ("http://exa\nmple.com/", "whitespace or a control character"),
    ("http://example.com/\x00", "whitespace or a control character"),
    ("http://example.com/\x7f", "whitespace or a control character"),
    ("http://example.com\\@127.0.0.1/", "URL contains a backslash at position 18"),
    ("ftp://example.com/", "scheme 'ftp' is not allowed; use http or https"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("gopher://example.com/", "scheme 'gopher' is not allowed"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("//example.com/hook", "URL must start with http:// or https://"),
    ("/relative/path", "URL must start with http:// or https://"),
    ("http://user:pass@example.com/", "must not carry a user name or password"),
    ("http://a@b/", "must not carry a user name or password"),
    ("http://@example.com/", "must not carry a user name or password"),
    ("http://evil.com@127.0.0.1/", "must not carry a user name or password"),
    ("http://127.0.0.1:80@hooks.example/", "must not carry a user name or password"),
    ("http://example.com:8080/", "port 8080 is not allowed (allowed: 80, 443)"),
    ("http://example.com:22/", "port 22 is not allowed (allowed: 80, 443)"),
    ("http://example.com:0/", "port '0' is not a number from 1 to 65535"),
    ("http://example.com:65536/", "port '65536' is not a number from 1 to 65535"),
    ("http://example.com:/", "port '' is not a number from 1 to 65535"),
    ("http://example.com:http/", "port 'http' is not a number"),
    ("http://example.com:+80/", "port '+80' is not a number"),
    ("http://example.com:８０/", "is not a number from 1 to 65535"),
    ("http://example.com:80:80/", "port '80:80' is not a number"),
    ("http:///hook", "URL has no host"),
    ("http:example.com", "URL has no host"),
    ("http://:80/", "URL has no host"),
    ("http://2130706433/", "numeric host forms like 2130706433 are not accepted; write the address as a dotted quad"),
    ("http://0x7f000001/", "numeric host forms like 0x7f000001 are not accepted"),
    ("http://0X7F000001/", "numeric host forms like 0x7f000001 are not accepted"),
    ("http://0177.0.0.1/", "numeric host forms like 0177.0.0.1 are not accepted"),
    ("http://127.1/", "numeric host forms like 127.1 are not accepted"),
    ("http://127.0.0.01/", "numeric host forms like 127.0.0.01 are not accepted"),
    ("http://1.2.3.4.5/", "numeric host forms like 1.2.3.4.5 are not accepted"),
    ("http://0x7f.0.0.1/", "numeric host forms like 0x7f.0.0.1 are not accepted"),
    ("http://256.0.0.1/", "numeric host forms like 256.0.0.1 are not accepted"),
    ("http://example.0x10/", "numeric host forms like example.0x10 are not accepted"),
    ("http://１２７.０.０.０１/", "numeric host forms like 127.0.0.01 are not accepted"),
    ("http://[127.0.0.1]/", "URL is malformed"),
    ("http://[::1/", "URL is malformed"),
    ("http://[::1]x/", "host '[::1]x' is malformed"),
    ("http://[fe80::1%25eth0]/", "is not an IPv6 address (zone ids are not accepted)"),
    ("http://[v1.fe]/", "[v1.fe] is not an IPv6 address"),
    ("http://exa_mple.com/", "host 'exa_mple.com' is not a valid DNS name"),
    ("http://-example.com/", "is not a valid DNS name"),
    ("http://example-.com/", "is not a valid DNS name"),
    ("http://a..b/", "is not a valid DNS name"),
    ("http://example.com../", "is not a valid DNS name"),
    ("http://ex%61mple.com/", "is not a valid DNS name"),
    ("http://ex!mple.com/", "is not a valid DNS name"),
    ("http://" + "a" * 64 + ".example/", "is not a valid DNS name"),
    ("http://" + ".".join(["a" * 60] * 4) + "." + "b" * 10 + "/", "is not a valid DNS name"),  # 254 characters
    ("http://ü..example/", "is not a valid internationalized name"),
    ("http://localhost/", "host localhost is an internal name; only public hosts are allowed"),
    ("http://LOCALHOST./", "host localhost is an internal name"),
    ("http://app.localhost/", "is an internal name"),
    ("http://printer.local/", "is an internal name"),
    ("http://metadata.google.internal/", "is an internal name"),
    ("http://box.localdomain/", "is an internal name"),
    ("http://nas.home.arpa/", "is an internal name"),
])
def test_parse_url_refuses_and_says_why(url, message):
    assert message in refusal(parse_url, url, DEFAULT)


@pytest.mark.parametrize("url", [
    "http://crm.corp.internal/", "http://localhost/", "http://printer.local/", "http://nas.home.arpa/",
])
def test_internal_names_are_looked_up_once_the_operator_allows_networks(url):
    assert parse_url(url, INSIDE)[1] == url[7:-1]


@pytest.mark.parametrize("url", [
    "http://" + "a" * 2000 + "_/",
    "http://" + "1." * 900 + "1/",
    "http://[" + "1:" * 900 + "]/",
    "http://example.com:" + "9" * 2000 + "/",
    "x" * 1500 + "://example.com/",
    "http://ü" + "a" * 1500 + "/",
])
def test_messages_quote_little_of_the_input(url):
    assert len(refusal(parse_url, url, DEFAULT)) < 320  # some 200 characters of it, and the reason


@pytest.mark.parametrize("ports, allow, expected_ports, expected_networks", [
    ("80,443", "", {80, 443}, ()),
    (" 80 , 443 , 8443 ", "", {80, 443, 8443}, ()),
    ("8080,", "", {8080}, ()),
    ("443", "10.0.0.0/8, 192.168.1.7, fd00::/8", {443}, ("10.0.0.0/8", "192.168.1.7/32", "fd00::/8")),
    ("443", "::1,", {443}, ("::1/128",)),
    ("65535,1", " ", {1, 65535}, ()),
])
def test_policy_from_text(ports, allow, expected_ports, expected_networks):
    policy = OutboundPolicy.from_text(ports, allow)
    assert policy.allowed_ports == frozenset(expected_ports)
    assert policy.allow_networks == tuple(ipaddress.ip_network(n) for n in expected_networks)


def test_policy_defaults_allow_web_ports_and_no_networks():
    assert OutboundPolicy.from_text() == OutboundPolicy() == OutboundPolicy.from_text("443,80", "")


@pytest.mark.parametrize("ports, allow, message", [
    ("", "", "no outbound ports given"),
    (" , ", "", "no outbound ports given"),
    ("80,http", "", "outbound port 'http' is not a number from 1 to 65535"),
    ("0", "", "outbound port '0' is not a number"),
    ("65536", "", "outbound port '65536' is not a number"),
    ("80;443", "", "outbound port '80;443' is not a number"),
    ("80", "10.0.0.0/33", "allow-list entry '10.0.0.0/33' is not an address or a network in CIDR form"),
    ("80", "10.0.0.1/8", "allow-list entry '10.0.0.1/8'"),  # host bits set: a typo, not a network
    ("80", "example.com", "allow-list entry 'example.com'"),
    ("80", "10.0.0.0/8 192.168.0.0/16", "allow-list entry '10.0.0.0/8 192.168.0.0/16'"),
    ("80", "fe80::1%eth0", "allow-list entry 'fe80::1%eth0'"),
])
def test_policy_from_text_says_which_entry_is_wrong(ports, allow, message):
    with pytest.raises(ValueError) as caught:
        OutboundPolicy.from_text(ports, allow)
    assert message in str(caught.value)


GLOBAL = "is not globally routable"
NEVER = "which is never allowed"
METADATA = "is a cloud metadata, link-local or this-host address, which is never allowed"


@pytest.mark.parametrize("address, message", [
    (PUBLIC, None),
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:93.184.216.34", None),
    ("64:ff9b::5db8:d822", None),  # NAT64 of a public address
    ("2002:5db8:d822::1", None),  # 6to4 of a public address
    ("127.0.0.1", "address 127.0.0.1 is not globally routable"),
    ("127.8.9.10", GLOBAL),
    ("10.0.0.1", GLOBAL),
    ("172.16.5.4", GLOBAL),
    ("192.168.1.1", GLOBAL),
    ("100.64.0.1", GLOBAL),
    ("192.0.0.8", GLOBAL),
    ("192.0.2.1", GLOBAL),
    ("198.18.0.1", GLOBAL),
    ("198.51.100.7", GLOBAL),
    ("::1", GLOBAL),
    ("fc00::1", GLOBAL),
    ("fd12:3456::1", GLOBAL),
    ("2001:db8::1", GLOBAL),
    ("fec0::1", GLOBAL),
    ("169.254.169.254", METADATA),
    ("169.254.170.2", METADATA),
    ("fd00:ec2::254", METADATA),
    ("100.100.100.200", METADATA),
    ("192.0.0.192", METADATA),
    ("168.63.129.16", METADATA),
    ("169.254.1.1", METADATA),
    ("fe80::1", METADATA),
    ("0.0.0.0", METADATA),
    ("0.1.2.3", METADATA),
    ("::", NEVER),
    ("255.255.255.255", NEVER),
    ("240.0.0.1", NEVER),
    ("224.0.0.1", NEVER),
    ("239.255.255.250", NEVER),
    ("ff02::1", NEVER),
    ("::7f00:1", NEVER),  # IPv4-compatible: deprecated, reserved
    ("64:ff9b:1::1", NEVER),  # local-use NAT64
    ("::ffff:127.0.0.1", "address ::ffff:127.0.0.1 stands for 127.0.0.1, which is not globally routable"),
    ("::ffff:7f00:1", "stands for 127.0.0.1, which is not globally routable"),
    ("::ffff:10.0.0.1", "stands for 10.0.0.1"),
    ("::ffff:169.254.169.254", "stands for 169.254.169.254, which is a cloud metadata"),
    ("64:ff9b::7f00:1", "stands for 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "stands for 169.254.169.254"),
    ("2002:7f00:1::1", "embeds 127.0.0.1, which is not globally routable"),
    ("2002:a9fe:a9fe::", "embeds 169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "is a Teredo address"),
    ("not-an-ip", "address not-an-ip is not an IP address"),
    ("", "is not an IP address"),
    ("127.1", "is not an IP address"),
    ("0177.0.0.1", "is not an IP address"),
    ("2130706433", "is not an IP address"),
    (" 1.2.3.4", "is not an IP address"),
    ("fe80::1%eth0", "is not an IP address"),
    ("2606:4700:4700::1111%1", "is not an IP address"),
])
def test_check_address_with_the_default_policy(address, message):
    if message is None:
        check_address(address, DEFAULT)
    else:
        assert message in refusal(check_address, address, DEFAULT)


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1", None),
    ("10.1.2.3", None),
    ("::ffff:10.1.2.3", None),
    ("fd12::1", None),
    ("100.64.0.1", None),
    (PUBLIC, None),
    ("192.168.1.1", GLOBAL),  # not in the list
    ("::1", GLOBAL),
    ("169.254.169.254", METADATA),  # the list holds 169.254.0.0/16: metadata stays out
    ("169.254.1.1", METADATA),
    ("fd00:ec2::254", METADATA),  # inside fd00::/8
    ("100.100.100.200", METADATA),  # inside 100.64.0.0/10
    ("::ffff:169.254.169.254", METADATA),
    ("224.0.0.1", NEVER),  # inside 224.0.0.0/4
    ("0.0.0.0", METADATA),
])
def test_check_address_with_an_allow_list(address, message):
    if message is None:
        check_address(address, INSIDE)
    else:
        assert message in refusal(check_address, address, INSIDE)


def test_an_ipv4_allow_list_admits_no_ipv6_address():
    everything_v4 = OutboundPolicy(allow_networks=(ipaddress.ip_network("0.0.0.0/0"),))
    check_address("10.0.0.1", everything_v4)
    assert GLOBAL in refusal(check_address, "fc00::1", everything_v4)
    assert GLOBAL in refusal(check_address, "::1", everything_v4)


@pytest.mark.parametrize("answer, message", [
    ([PUBLIC], None),
    (["2606:4700:4700::1111", PUBLIC], None),
    (["127.0.0.1"], "address 127.0.0.1 of example.test is not globally routable"),
    ([PUBLIC, "10.0.0.1"], "address 10.0.0.1 of example.test is not globally routable"),
    (["10.0.0.1", PUBLIC], "address 10.0.0.1 of example.test"),
    ([PUBLIC, "169.254.169.254"], "address 169.254.169.254 of example.test is a cloud metadata"),
    (["::ffff:127.0.0.1"], "of example.test stands for 127.0.0.1"),
    (["fe80::1%eth0"], "address fe80::1%eth0 of example.test is not an IP address"),
    (["example.org"], "address example.org of example.test is not an IP address"),
    ([], "example.test resolves to no addresses"),
])
async def test_resolve_target_checks_every_address_the_name_has(answer, message):
    resolver = FakeResolver(answer)
    if message is None:
        target = await resolve_target("https://example.test/hook?a=1", DEFAULT, resolver)
        assert target == Target(url="https://example.test/hook?a=1", scheme="https", host="example.test", port=443,
                                request_target="/hook?a=1", addresses=tuple(answer))
    else:
        assert message in await async_refusal(resolve_target("https://example.test/hook?a=1", DEFAULT, resolver))
    assert resolver.calls == [("example.test", 443)]


async def test_a_name_that_does_not_resolve_is_refused_with_the_resolvers_reason():
    failure = UnsafeTarget(message="example.test does not resolve (Name or service not known)")
    with pytest.raises(UnsafeTarget) as caught:
        await resolve_target("http://example.test/", DEFAULT, FakeResolver(failure))
    assert caught.value is failure


async def test_addresses_are_normalized_deduplicated_and_kept_in_order():
    answer = ["2606:2800:0220:0001:0248:1893:25C8:1946", PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", PUBLIC,
              "::FFFF:93.184.216.34"]
    target = await resolve_target("http://example.test/", DEFAULT, FakeResolver(answer))
    mapped = str(ipaddress.ip_address("::ffff:93.184.216.34"))  # the spelling differs between Python versions
    assert target.addresses == ("2606:2800:220:1:248:1893:25c8:1946", PUBLIC, mapped)


@pytest.mark.parametrize("url, policy, addresses", [
    ("http://93.184.216.34/", DEFAULT, (PUBLIC,)),
    ("https://[2606:4700:4700::1111]/x", DEFAULT, ("2606:4700:4700::1111",)),
    ("http://127.0.0.1:8080/x", INSIDE, ("127.0.0.1",)),
    ("http://[fd12::1]/", INSIDE, ("fd12::1",)),
    ("http://127.0.0.1/", DEFAULT, None),
    ("http://[::ffff:127.0.0.1]/", DEFAULT, None),
    ("http://169.254.169.254/", INSIDE, None),
])
async def test_ip_literals_are_checked_without_a_lookup(url, policy, addresses):
    resolver = FakeResolver([PUBLIC])
    if addresses is None:
        message = await async_refusal(resolve_target(url, policy, resolver))
        assert " of " not in message  # no name to report
    else:
        assert (await resolve_target(url, policy, resolver)).addresses == addresses
    assert resolver.calls == []


async def test_the_allow_list_lets_internal_receivers_through_but_never_metadata():
    target = await resolve_target("http://127.0.0.1:8080/x", INSIDE, FakeResolver([]))
    assert (target.host, target.port, target.request_target, target.addresses) == ("127.0.0.1", 8080, "/x",
                                                                                   ("127.0.0.1",))
    assert (await resolve_target("http://crm.corp.internal/", INSIDE, FakeResolver(["10.0.0.5"]))).addresses == (
        "10.0.0.5",)
    assert "is a cloud metadata" in await async_refusal(resolve_target("http://169.254.169.254/", INSIDE))
    assert "is a cloud metadata" in await async_refusal(
        resolve_target("http://metadata.google.internal/", INSIDE, FakeResolver(["169.254.169.254"])))
    assert "port 8081 is not allowed (allowed: 80, 443, 8080)" in await async_refusal(
        resolve_target("http://127.0.0.1:8081/", INSIDE))


@pytest.mark.parametrize("url", [
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://[::ffff:127.0.0.1]/",
    "http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://100.100.100.200/", "http://192.0.0.192/", "http://10.0.0.1/", "http://[::1]/", "http://0.0.0.0/",
    "http://user:pw@example.com/", "ftp://example.com/", "http://example.com:22/", "http://[::ffff:7f00:1]/",
    "gopher://example.com/", "file:///etc/passwd",
])
async def test_the_issue_ssrf_matrix_is_refused(url):
    # The resolver would say "public" for any name: each refusal is the guard's own.
    await async_refusal(resolve_target(url, DEFAULT, FakeResolver([PUBLIC])))


@pytest.mark.parametrize("url, host, request_target", [
    ("https://example.com/hook", "example.com", "/hook"),
    ("http://hooks.example.com/p?x=1&y=2", "hooks.example.com", "/p?x=1&y=2"),
])
async def test_the_issue_examples_are_allowed(url, host, request_target):
    target = await resolve_target(url, DEFAULT, FakeResolver([PUBLIC]))
    assert (target.url, target.host, target.request_target, target.addresses) == (url, host, request_target, (PUBLIC,))


async def test_localhost_is_refused_with_the_real_resolver():
    assert "localhost" in await async_refusal(resolve_target("http://localhost/", OutboundPolicy()))
    # Even where the name is allowed through to the lookup, its loopback addresses are not.
    only_ten = OutboundPolicy(allow_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert GLOBAL in await async_refusal(resolve_target("http://localhost/", only_ten))


async def test_system_resolver_finds_localhost():
    addresses = await system_resolver("localhost", 80)
    assert {"127.0.0.1", "::1"} & set(addresses)
    assert len(addresses) == len(set(addresses))


async def test_system_resolver_refuses_a_name_it_cannot_look_up():
    message = await async_refusal(system_resolver("a" * 64 + ".invalid", 80))
    assert message.startswith("a" * 64 + ".invalid does not resolve (")
