import hashlib

import pytest

from core import api_keys


def test_generated_keys_have_the_documented_shape_and_differ():
    live, test = api_keys.generate_key(), api_keys.generate_key(test=True)
    assert live.startswith("aft_live_") and test.startswith("aft_test_")
    assert len(live) == api_keys.KEY_LENGTH and api_keys.is_well_formed(live) and api_keys.is_well_formed(test)
    assert live != api_keys.generate_key()


def test_hash_is_sha256_and_display_parts_come_from_the_key():
    key = api_keys.generate_key()
    assert api_keys.hash_key(key) == hashlib.sha256(key.encode()).digest()
    assert api_keys.display_prefix(key) == key[:13] and api_keys.last4(key) == key[-4:]


@pytest.mark.parametrize("presented", [
    "", "aft_live_", "aft_live_" + "a" * 42, "aft_live_" + "a" * 44, "aft_prod_" + "a" * 43,
    "aft_live_" + "a" * 42 + "-", "aft_live_" + "a" * 42 + "\n", "Bearer aft_live_" + "a" * 43,
    "aft_live_" + "é" * 43,
])
def test_malformed_keys_are_rejected_before_hashing(presented):
    assert not api_keys.is_well_formed(presented)
