"""controller.numbers: E.164 normalisation, reasons, the per-prefix location cache (D9)."""
from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import geocoder, timezone

from controller import numbers as N
from controller.numbers import Reason


@pytest.mark.parametrize(
    "raw, region, e164",
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("+1 415 555 2671", "GB", "+14155552671"),
        ("+44 20 7946 0000", "US", "+442079460000"),
        ("020 7946 0000", "GB", "+442079460000"),
        ("  +33 1 42 68 53 00 ", None, "+33142685300"),
    ],
)
def test_d9_valid_numbers_normalise_to_e164(raw, region, e164):
    parsed = N.parse_number(raw, region)
    assert parsed, parsed
    assert parsed.e164 == e164


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", Reason.EMPTY),
        (None, Reason.EMPTY),
        ("12", Reason.TOO_SHORT),
        ("+999123456789", Reason.INVALID_COUNTRY_CODE),
        ("abc", Reason.NOT_A_NUMBER),
        ("call me", Reason.NOT_A_NUMBER),
        ("+1 555 555 2671", Reason.INVALID_AREA_CODE),  # no area code 555
        ("(155) 555-2671", Reason.INVALID_AREA_CODE),  # area codes never start with 1
        ("+1 212 555 0100 99 88 77", Reason.TOO_LONG),
        ("4" * 300, Reason.TOO_LONG),
        ("020 7946 0000", Reason.TOO_LONG),  # UK national format read as US: 11 digits
    ],
)
def test_d9_invalid_numbers_have_a_reason(raw, reason):
    result = N.parse_number(raw, "US")
    assert not result
    assert result.reason == reason
    assert result.message


def test_d9_no_default_region_needs_a_country_code():
    assert N.parse_number("(415) 555-2671", None).reason == Reason.INVALID_COUNTRY_CODE


def test_us_location_split_into_city_and_state():
    n = N.normalise("(415) 555-2671", "US")
    assert (n.country, n.city, n.region, n.timezones) == ("US", "San Francisco", "CA", ("America/Los_Angeles",))
    nj = N.normalise("+1 201 555 0123", "US")  # description is only "New Jersey"
    assert (nj.city, nj.region) == (None, "NJ")


def test_uk_and_multi_zone_numbers():
    london = N.normalise("+44 20 7946 0000")
    assert (london.country, london.city, london.region, london.timezones) == ("GB", "London", None,
                                                                               ("Europe/London",))
    alaska = N.normalise("+1 907 555 0123")
    assert set(alaska.timezones) == {"America/Adak", "America/Anchorage"}
    assert alaska.timezone_text == "America/Adak America/Anchorage"


def test_prefix_key_length_comes_from_the_data():
    from phonenumbers.geodata import GEOCODE_DATA
    from phonenumbers.tzdata import TIMEZONE_DATA

    assert N.prefix_key_length("+14155552671") == 7  # 1 + area code + exchange
    for cc in ("1", "44", "49", "61"):
        longest = max(len(k) for data in (GEOCODE_DATA, TIMEZONE_DATA) for k in data if k.startswith(cc)
                      and phonenumbers.country_code_for_region(
                          phonenumbers.region_code_for_country_code(int(cc))) == int(cc))
        assert N.prefix_key_length("+" + cc + "123456789") >= longest


def test_location_cache_agrees_with_phonenumbers():
    """The per-prefix cache answers exactly what asking phonenumbers for each number answers.

    Pairs of numbers share a cache key (same leading digits, different tails),
    so a key that was too short would return the first number's answer for the
    second and fail here.
    """
    from phonenumbers.geodata import GEOCODE_DATA

    rng = random.Random(5)
    prefixes = sorted(k for k in GEOCODE_DATA if k.startswith(("1", "44", "49", "33", "61", "54", "353", "86", "39", "7")))
    N._location_cache.clear()
    checked = 0
    for _ in range(1500):
        prefix = rng.choice(prefixes)
        raw = "+" + prefix + "".join(rng.choices("0123456789", k=max(0, 11 - len(prefix) + rng.randrange(2))))
        for candidate in (raw, raw[:-2] + f"{rng.randrange(100):02d}", raw[:-4] + f"{rng.randrange(10000):04d}"):
            p = N.parse_number(candidate)
            if not p:
                continue
            cached = N.describe(p)
            assert cached == N._lookup_location(p) == N._lookup_location_slow(p), candidate
            numobj = phonenumbers.parse(candidate)
            zones = tuple(z for z in timezone.time_zones_for_number(numobj) if z != "Etc/Unknown")
            assert cached.timezones == zones, candidate
            if p.geographical and cached.city:
                assert cached.city in geocoder.description_for_number(numobj, "en"), candidate
            checked += 1
    assert checked > 1000
    assert N.cache_info()["hits"] > 0


@settings(max_examples=300, deadline=None)
@given(
    plus=st.sampled_from(["", "+1", "1", "+1 ", "1-", "1 "]),
    area=st.integers(200, 999),
    exchange=st.integers(200, 999),
    line=st.integers(0, 9999),
    style=st.sampled_from(["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a} {e} {l}", "{a}{e}{l}"]),
    region=st.sampled_from(["US", "CA", "GB", None]),
)
def test_fast_nanp_path_matches_phonenumbers_parse(plus, area, exchange, line, style, region):
    raw = plus + style.format(a=area, e=exchange, l=f"{line:04d}")
    fast = N._fast_nanp(raw, region)
    try:
        slow = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        assert fast is None
        return
    if fast is not None:
        assert (fast.country_code, fast.national_number) == (slow.country_code, slow.national_number)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "AU", "MX", "CA", "JM", "AR", "IT"]),
       st.text(alphabet="0123456789", min_size=4, max_size=13))
def test_classify_agrees_with_is_valid_number(region, digits):
    try:
        numobj = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return
    _, ntype = N._classify(numobj)
    assert (ntype != phonenumbers.PhoneNumberType.UNKNOWN) == phonenumbers.is_valid_number(numobj)
    if phonenumbers.is_valid_number(numobj):
        assert ntype == phonenumbers.number_type(numobj)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_never_raises(text):
    result = N.parse_number(text, "US")
    assert isinstance(result, (N.ParsedNumber, N.NumberRejection))
