from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from core import fraud_rules as fraud
from core.errors import ValidationError

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
CUBOT = "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"


@pytest.mark.parametrize(("user_agent", "is_bot"), [
    (None, False),
    ("", False),
    (CHROME, False),
    (IPHONE, False),
    (CUBOT, False),  # a phone brand, not a bot
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", True),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", True),
    ("curl/8.4.0", True),
    ("python-requests/2.31.0", True),
    ("Go-http-client/1.1", True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
    ("Mozilla/5.0 (compatible; YandexImages/3.0; +http://yandex.com/bots)", True),  # only ua-parser knows this one
])
def test_bot_user_agent(user_agent, is_bot):
    verdict = fraud.bot_user_agent(user_agent)
    assert (verdict is not None) == is_bot
    if verdict:
        assert verdict.code == "bot_user_agent"


@pytest.mark.parametrize(("clicked_at", "converted_at", "min_s", "is_fast"), [
    (NOW, NOW + timedelta(milliseconds=1), 10, True),
    (NOW, NOW + timedelta(seconds=9, microseconds=999_999), 10, True),
    (NOW, NOW + timedelta(seconds=10), 10, False),  # exactly at the minimum passes
    (NOW, NOW + timedelta(hours=3), 10, False),
    (NOW, NOW - timedelta(seconds=5), 10, True),  # before its click
    (NOW, NOW + timedelta(seconds=1), 0, False),
    (NOW, NOW + timedelta(seconds=30), 60, True),
    (None, NOW, 10, False),
    (NOW, None, 10, False),
])
def test_too_fast(clicked_at, converted_at, min_s, is_fast):
    verdict = fraud.too_fast(clicked_at, converted_at, min_s)
    assert (verdict is not None) == is_fast
    if verdict:
        assert verdict.code == "too_fast"


@pytest.mark.parametrize(("count", "maximum", "is_flood"), [
    (None, 10, False),
    (0, 10, False),
    (10, 10, False),  # exactly at the maximum passes
    (11, 10, True),
    (1, 0, True),
    (500, 100, True),
])
def test_click_flood(count, maximum, is_flood):
    verdict = fraud.click_flood(count, maximum)
    assert (verdict is not None) == is_flood
    if verdict:
        assert verdict.code == "click_flood"


@pytest.mark.parametrize(("earlier", "maximum", "is_repeat"), [
    (None, 0, False),
    (0, 0, False),  # the first conversion from an IP always passes
    (1, 0, True),
    (3, 3, False),  # exactly at the maximum passes
    (4, 3, True),
])
def test_repeat_ip(earlier, maximum, is_repeat):
    verdict = fraud.repeat_ip(earlier, maximum)
    assert (verdict is not None) == is_repeat
    if verdict:
        assert verdict.code == "repeat_ip"


@pytest.mark.parametrize(("click", "conversion", "is_mismatch"), [
    ("US", "US", False),
    ("US", "us", False),
    ("US", "DE", True),
    ("gb", "FR", True),
    (None, "DE", False),
    ("US", None, False),
    ("XX", "DE", False),  # the proxy's "unknown" is not a country
    ("US", "", False),
    ("US", "USA", False),
])
def test_country_mismatch(click, conversion, is_mismatch):
    verdict = fraud.country_mismatch(click, conversion)
    assert (verdict is not None) == is_mismatch
    if verdict:
        assert verdict.code == "country_mismatch"


RANGES = fraud.CidrList.parse("""
# AWS, a sample
3.0.0.0/15
52.94.0.0/22   # trailing comment
198.51.100.7
2600:1f00::/24

10.0.0.0/8
10.1.0.0/16
""")


@pytest.mark.parametrize(("ip", "listed"), [
    ("3.0.0.0", True),
    ("3.1.255.255", True),  # last address of the /15
    ("3.2.0.0", False),
    ("2.255.255.255", False),
    ("52.94.3.255", True),
    ("52.94.4.0", False),
    ("198.51.100.7", True),
    ("198.51.100.8", False),
    ("10.1.2.3", True),  # inside overlapping ranges, merged at load
    ("10.200.0.1", True),
    ("11.0.0.0", False),
    ("2600:1f00::1", True),
    ("2600:1e00::1", False),
    ("::ffff:3.0.0.1", True),  # IPv4-mapped IPv6
    ("0.0.0.0", False),
    (None, False),
    ("", False),
    ("not-an-ip", False),
])
def test_datacenter_ip(ip, listed):
    verdict = fraud.datacenter_ip(ip, RANGES)
    assert (verdict is not None) == listed
    if verdict:
        assert verdict.code == "datacenter_ip"


def test_empty_cidr_list_contains_nothing():
    assert not fraud.CidrList.parse("").contains("1.2.3.4")
    assert not fraud.CidrList.parse(["# nothing", "   "]).contains("::1")


@pytest.mark.parametrize(("text", "bad_line"), [
    ("10.0.0.0/8\n10.0.0.0/33\n", 2),
    ("# header\n\n1.2.3.4/24\n", 3),  # host bits set
    ("example.com\n", 1),
    ("10.0.0.0/8\n10.0.0.0/16\n::1/129\n", 3),
    ("1.2.3\n", 1),
])
def test_invalid_cidr_lines_are_rejected_with_their_line_number(text, bad_line):
    with pytest.raises(ValidationError) as caught:
        fraud.CidrList.parse(text)
    assert caught.value.code == "invalid_cidr"
    assert caught.value.message.startswith(f"line {bad_line}:")


CLEAN = fraud.ConversionSignals(
    converted_at=NOW,
    clicked_at=NOW - timedelta(minutes=5),
    user_agent=CHROME,
    ip="203.0.113.9",
    click_country="US",
    conversion_country="US",
    clicks_from_ip_last_minute=1,
    earlier_conversions_from_ip=0,
)
SUSPECT = msgspec.structs.replace(
    CLEAN,
    clicked_at=NOW - timedelta(seconds=2),
    user_agent="curl/8.4.0",
    ip="3.0.0.1",
    conversion_country="DE",
    clicks_from_ip_last_minute=50,
    earlier_conversions_from_ip=4,
)
STRICT_THRESHOLDS = {"click_flood_max_per_minute": 10, "repeat_ip_max_earlier": 1}
ALL_CODES = ("bot_user_agent", "too_fast", "click_flood", "repeat_ip", "datacenter_ip", "country_mismatch")


def codes(verdicts):
    return tuple(v.code for v in verdicts)


def test_clean_conversion_is_accepted():
    outcome = fraud.evaluate(CLEAN, fraud.FraudPolicy(**STRICT_THRESHOLDS), RANGES)
    assert (outcome.action, outcome.reason, outcome.flagged, outcome.rejected) == ("accept", None, (), ())


def test_unknown_signals_give_no_verdict():
    outcome = fraud.evaluate(fraud.ConversionSignals(converted_at=NOW), fraud.FraudPolicy(**STRICT_THRESHOLDS), RANGES)
    assert outcome.action == "accept"


def test_every_rule_flags_under_the_default_policy():
    outcome = fraud.evaluate(SUSPECT, fraud.FraudPolicy(**STRICT_THRESHOLDS), RANGES)
    assert outcome.action == "flag"
    assert codes(outcome.flagged) == ALL_CODES
    assert outcome.rejected == ()
    assert outcome.reason == "bot_user_agent"


def test_every_rule_rejects_when_the_policy_says_so():
    policy = fraud.FraudPolicy(**STRICT_THRESHOLDS, **{code: "reject" for code in ALL_CODES})
    outcome = fraud.evaluate(SUSPECT, policy, RANGES)
    assert (outcome.action, codes(outcome.rejected), outcome.flagged) == ("reject", ALL_CODES, ())


def test_a_rejecting_rule_wins_over_flags_and_names_the_reason():
    policy = fraud.FraudPolicy(**STRICT_THRESHOLDS, country_mismatch="reject")
    outcome = fraud.evaluate(SUSPECT, policy, RANGES)
    assert outcome.action == "reject"
    assert outcome.reason == "country_mismatch"
    assert codes(outcome.rejected) == ("country_mismatch",)
    assert codes(outcome.flagged) == ALL_CODES[:5]


def test_rules_without_threshold_or_ranges_stay_off():
    outcome = fraud.evaluate(SUSPECT, fraud.FraudPolicy(), None)
    assert codes(outcome.flagged) == ("bot_user_agent", "too_fast", "country_mismatch")


def test_minimum_time_to_convert_is_per_offer():
    signals = msgspec.structs.replace(CLEAN, clicked_at=NOW - timedelta(seconds=30))
    assert fraud.evaluate(signals, fraud.FraudPolicy(), None).action == "accept"
    outcome = fraud.evaluate(signals, fraud.FraudPolicy(min_seconds_to_convert=60, too_fast="reject"), None)
    assert (outcome.action, outcome.reason) == ("reject", "too_fast")


@pytest.mark.parametrize("fields", [
    {"too_fast": "block"},
    {"bot_user_agent": "off"},
    {"min_seconds_to_convert": -1},
    {"click_flood_max_per_minute": -5},
    {"repeat_ip_max_earlier": 1.5},
])
def test_invalid_policies_are_refused(fields):
    with pytest.raises(ValidationError) as caught:
        fraud.FraudPolicy(**fields)
    assert caught.value.code == "invalid_fraud_policy"


def test_policy_decodes_from_json_with_defaults():
    policy = msgspec.json.decode(b'{"too_fast": "reject", "click_flood_max_per_minute": 30}', type=fraud.FraudPolicy)
    assert (policy.too_fast, policy.min_seconds_to_convert, policy.click_flood_max_per_minute) == ("reject", 10, 30)
    assert policy.bot_user_agent == "flag"
