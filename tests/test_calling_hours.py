"""controller.calling_hours: the X1 local calling window, strictest over several zones."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.calling_hours import (
    CallingWindow,
    WindowError,
    is_callable,
    next_callable,
    parse_window,
    record_zones,
)
from esl_dialer.messages import TimezonePolicy

UTC = dt.timezone.utc
W = parse_window("08:00-21:00")


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_parse_window_and_errors():
    assert str(parse_window(" 8:30 - 20:00 ")) == "08:30-20:00"
    for bad in ("", "8-21", "25:00-21:00", "08:00-08:00", "08:61-21:00"):
        with pytest.raises(WindowError):
            parse_window(bad)


def test_x1_inside_and_outside_one_zone():
    # 2026-01-15 14:00 UTC = 09:00 in New York (EST, UTC-5)
    assert is_callable(utc(2026, 1, 15, 14, 0), ["America/New_York"], W)
    assert not is_callable(utc(2026, 1, 15, 12, 59), ["America/New_York"], W)  # 07:59 local
    assert is_callable(utc(2026, 1, 16, 1, 59), ["America/New_York"], W)  # 20:59 local
    assert not is_callable(utc(2026, 1, 16, 2, 0), ["America/New_York"], W)  # 21:00: end is exclusive


def test_x1_naive_datetimes_are_utc():
    assert is_callable(dt.datetime(2026, 1, 15, 14, 0), ["America/New_York"], W)


def test_x1_several_zones_strictest():
    zones = ["America/Adak", "America/Anchorage"]  # UTC-10 and UTC-9 in January
    # 18:30 UTC: Anchorage 09:30 (in), Adak 08:30 (in)
    assert is_callable(utc(2026, 1, 15, 18, 30), zones, W)
    # 17:30 UTC: Anchorage 08:30 (in), Adak 07:30 (out) -> not callable
    assert not is_callable(utc(2026, 1, 15, 17, 30), zones, W)
    assert is_callable(utc(2026, 1, 15, 17, 30), ["America/Anchorage"], W)


def test_x1_no_zone_means_no():
    assert not is_callable(utc(2026, 1, 15, 18, 0), [], W)


def test_x1_dst_is_respected():
    # 13:00 UTC is 09:00 EDT in July but 08:00 EST in January; 12:30 UTC is 08:30 EDT / 07:30 EST
    assert is_callable(utc(2026, 7, 15, 12, 30), ["America/New_York"], W)
    assert not is_callable(utc(2026, 1, 15, 12, 30), ["America/New_York"], W)


def test_wrapping_window():
    night = parse_window("22:00-06:00")
    assert night.contains(dt.time(23, 0)) and night.contains(dt.time(5, 59))
    assert not night.contains(dt.time(6, 0)) and not night.contains(dt.time(12, 0))


def test_record_zones_policy():
    assert record_zones("America/Adak America/Anchorage", TimezonePolicy.NUMBER, "America/New_York") == (
        "America/Adak", "America/Anchorage")
    assert record_zones("America/Adak", "campaign", "America/New_York") == ("America/New_York",)
    assert record_zones(None, TimezonePolicy.NUMBER, "America/Chicago") == ("America/Chicago",)
    assert record_zones("Not/AZone", TimezonePolicy.NUMBER, "America/Chicago") == ("America/Chicago",)
    assert record_zones(None, TimezonePolicy.NUMBER, None) == ()


def test_next_callable():
    ny = ["America/New_York"]
    early = utc(2026, 1, 15, 10, 0)  # 05:00 local
    assert next_callable(early, ny, W) == utc(2026, 1, 15, 13, 0)  # 08:00 local
    inside = utc(2026, 1, 15, 15, 0)
    assert next_callable(inside, ny, W) == inside
    both = ["America/Adak", "America/Anchorage"]
    assert next_callable(utc(2026, 1, 15, 17, 0), both, W) == utc(2026, 1, 15, 18, 0)  # Adak opens
    # Zones 12+ hours apart with a short window never overlap.
    assert next_callable(utc(2026, 1, 15), ["Asia/Kolkata", "America/New_York"], parse_window("09:00-10:00")) is None


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2028, 1, 1)),
       st.lists(st.sampled_from(["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
                                 "America/Anchorage", "America/Adak", "Europe/London", "Asia/Kolkata"]),
                min_size=1, max_size=3, unique=True))
def test_next_callable_is_callable_and_earliest(when, zones):
    found = next_callable(when, zones, W)
    if found is None:
        return
    assert is_callable(found, zones, W)
    # nothing callable in the minutes before it (checked on a 15-minute grid)
    t = when.replace(tzinfo=UTC)
    while t < found - dt.timedelta(minutes=15):
        assert not is_callable(t, zones, W)
        t += dt.timedelta(minutes=15)


def test_calling_window_rejects_empty():
    with pytest.raises(WindowError):
        CallingWindow(dt.time(8), dt.time(8))
