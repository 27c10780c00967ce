import hashlib
import hmac

import pytest

from core.errors import Unauthorized
from core.signatures import (
    MALFORMED,
    MISMATCH,
    NOT_CONFIGURED,
    OUTSIDE_WINDOW,
    SIGNATURE_HEADER_MAX_LENGTH,
    sign,
    verify,
)

SECRET = b"whsec_test_secret"
OLD_SECRET = b"whsec_old_secret"
BODY = b'{"click_id":"abc","amount":"10.50","currency":"USD"}'
NOW_S = 1_700_000_000


def _hex(secret: bytes, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _code(secret, header, body=BODY, now_s=NOW_S, window_s=300):
    with pytest.raises(Unauthorized) as caught:
        verify(secret, header, body, now_s, window_s)
    return caught.value.code


def test_sign_matches_a_known_answer():
    header = sign(SECRET, BODY, NOW_S)
    assert header == f"t={NOW_S},v1={_hex(SECRET, NOW_S, BODY)}"
    assert header == (
        "t=1700000000,v1=" + hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    )


def test_verify_accepts_what_sign_produces():
    assert verify(SECRET, sign(SECRET, BODY, NOW_S), BODY, NOW_S) is None


def test_verify_accepts_an_empty_body():
    assert verify(SECRET, sign(SECRET, b"", NOW_S), b"", NOW_S) is None


@pytest.mark.parametrize("signed_at", [NOW_S - 300, NOW_S + 300, NOW_S - 1, NOW_S + 1])
def test_window_edges_are_inside(signed_at):
    assert verify(SECRET, sign(SECRET, BODY, signed_at), BODY, NOW_S) is None


@pytest.mark.parametrize("signed_at", [NOW_S - 301, NOW_S + 301, 0, NOW_S - 86_400])
def test_outside_the_window_is_rejected(signed_at):
    assert _code(SECRET, sign(SECRET, BODY, signed_at)) == OUTSIDE_WINDOW


def test_window_is_configurable():
    header = sign(SECRET, BODY, NOW_S - 60)
    assert _code(SECRET, header, window_s=59) == OUTSIDE_WINDOW
    assert verify(SECRET, header, BODY, NOW_S, window_s=60) is None


def test_window_is_checked_before_the_signature():
    header = f"t={NOW_S - 1000},v1={'0' * 64}"
    assert _code(SECRET, header) == OUTSIDE_WINDOW


def test_tampered_body_is_rejected():
    header = sign(SECRET, BODY, NOW_S)
    assert _code(SECRET, header, body=BODY.replace(b"10.50", b"99.50")) == MISMATCH
    assert _code(SECRET, header, body=BODY + b" ") == MISMATCH


def test_wrong_secret_is_rejected():
    assert _code(OLD_SECRET, sign(SECRET, BODY, NOW_S)) == MISMATCH


def test_timestamp_is_part_of_what_is_signed():
    moved = f"t={NOW_S + 1},v1={_hex(SECRET, NOW_S, BODY)}"
    assert _code(SECRET, moved) == MISMATCH


def test_rotation_accepts_any_listed_v1():
    new, old = _hex(SECRET, NOW_S, BODY), _hex(OLD_SECRET, NOW_S, BODY)
    header = f"t={NOW_S},v1={old},v1={new}"
    assert verify(SECRET, header, BODY, NOW_S) is None
    assert verify(OLD_SECRET, header, BODY, NOW_S) is None
    assert _code(b"a third secret", header) == MISMATCH


def test_upper_case_hex_and_spaces_after_commas_are_accepted():
    header = f"t={NOW_S}, v1={_hex(SECRET, NOW_S, BODY).upper()}"
    assert verify(SECRET, header, BODY, NOW_S) is None


def test_other_schemes_are_ignored_beside_v1():
    header = f"t={NOW_S},v0=legacy,v1={_hex(SECRET, NOW_S, BODY)},v2=future"
    assert verify(SECRET, header, BODY, NOW_S) is None


def test_only_a_v1_entry_can_pass():
    header = f"t={NOW_S},v2={_hex(SECRET, NOW_S, BODY)}"
    assert _code(SECRET, header) == MALFORMED


def test_an_empty_secret_never_verifies():
    header = f"t={NOW_S},v1={_hex(b'', NOW_S, BODY)}"
    assert _code(b"", header) == NOT_CONFIGURED


def test_sign_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        sign(b"", BODY, NOW_S)


_GOOD_HEX = _hex(SECRET, NOW_S, BODY)


@pytest.mark.parametrize(
    "header",
    [
        "",
        None,
        b"t=1700000000,v1=" + _GOOD_HEX.encode(),
        12345,
        ["t=1", "v1=x"],
        f"v1={_GOOD_HEX}",  # missing t
        f"t={NOW_S}",  # missing v1
        f"t={NOW_S},t={NOW_S},v1={_GOOD_HEX}",  # duplicate t
        f"t={NOW_S},v1={_GOOD_HEX},t={NOW_S + 1}",
        f"t=,v1={_GOOD_HEX}",
        f"t=-{NOW_S},v1={_GOOD_HEX}",
        f"t=+{NOW_S},v1={_GOOD_HEX}",
        f"t={NOW_S}.5,v1={_GOOD_HEX}",
        f"t=1e9,v1={_GOOD_HEX}",
        f"t=9999999999999,v1={_GOOD_HEX}",
        f"t=\u0661\u0667,v1={_GOOD_HEX}",
        f"t={NOW_S},v1={_GOOD_HEX[:-1]}",  # 63 hex
        f"t={NOW_S},v1={_GOOD_HEX}0",  # 65 hex
        f"t={NOW_S},v1={'g' * 64}",  # non-hex
        f"t={NOW_S},v1={_GOOD_HEX[:-2]}\u00e9\u00e9",
        f"t={NOW_S},v1=",
        f"t={NOW_S},v1",
        f"t={NOW_S},v1={_GOOD_HEX},v1=zz",
        f"t={NOW_S},v1={_GOOD_HEX},",
        f",t={NOW_S},v1={_GOOD_HEX}",
        f"t={NOW_S};v1={_GOOD_HEX}",
        f"T={NOW_S},V1={_GOOD_HEX}",
        f"t={NOW_S},sig={_GOOD_HEX}",
        f"t={NOW_S},v1={_GOOD_HEX},x=1",
        f"t={NOW_S}\r\nv1={_GOOD_HEX}",
        f"t={NOW_S},v1={_GOOD_HEX}\x00",
        f"\tt={NOW_S},v1={_GOOD_HEX}",
        "t=1700000000,v1=" + "0" * 64 + ",v1=" + "=" * 64,
        "==,,==",
        "\ud800",
        f"t={NOW_S}," + ",".join([f"v1={_GOOD_HEX}"] * 20),  # over the length bound
        "x" * (SIGNATURE_HEADER_MAX_LENGTH + 1),
        "t=" + "9" * 1_000_000,
        f"t={NOW_S},v1={_GOOD_HEX}" + " " * SIGNATURE_HEADER_MAX_LENGTH,
    ],
)
def test_garbage_headers_are_malformed(header):
    assert _code(SECRET, header) == MALFORMED


def test_header_at_the_length_bound_is_read():
    entries = [f"v1={_hex(OLD_SECRET, NOW_S, BODY)}"] * 13 + [f"v1={_GOOD_HEX}"]
    header = f"t={NOW_S}," + ",".join(entries)
    assert len(header) <= SIGNATURE_HEADER_MAX_LENGTH
    assert verify(SECRET, header, BODY, NOW_S) is None


def test_errors_carry_a_message():
    with pytest.raises(Unauthorized) as caught:
        verify(SECRET, "nonsense", BODY, NOW_S)
    assert caught.value.message and caught.value.message != caught.value.code
