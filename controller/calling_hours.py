"""Calling-window rules (SPEC X1), pure: values in, decisions out.

A record may be dialled only while the local time is inside the campaign's
window (default 08:00-21:00).  When a number's prefix spans several time zones
(phonenumbers returns all of them), the strictest reading applies: the local
time must be inside the window in *every* zone.  Unknown zones fall back to the
campaign's default zone; with no zone at all the answer is "no" (never guess
in favour of calling).

Times are timezone-aware or naive UTC (the database stores naive UTC).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from typing import Iterable, Optional, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from esl_dialer.messages import TimezonePolicy

DEFAULT_WINDOW = "08:00-21:00"
_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


class WindowError(ValueError):
    """A calling window or zone name that cannot be understood."""


@dataclasses.dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local wall-clock window; ``start`` inclusive, ``end`` exclusive.

    ``start > end`` means the window wraps past midnight (22:00-06:00).
    """

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise WindowError("calling window is empty (start equals end)")

    def contains(self, local: dt.time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _hhmm(h: str, m: str, text: str) -> dt.time:
    hour, minute = int(h), int(m)
    if hour == 24 and minute == 0:
        return dt.time(23, 59, 59, 999999)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise WindowError(f"bad time in calling window {text!r}")
    return dt.time(hour, minute)


def parse_window(text: str) -> CallingWindow:
    """``"08:00-21:00"`` -> CallingWindow; raises WindowError with a readable message."""
    match = _WINDOW_RE.match(text or "")
    if not match:
        raise WindowError(f"calling window must look like 08:00-21:00, got {text!r}")
    return CallingWindow(_hhmm(match[1], match[2], text), _hhmm(match[3], match[4], text))


def window_from_fields(start: str, end: str) -> CallingWindow:
    """From the campaign's ``window_start`` / ``window_end`` columns."""
    return parse_window(f"{start}-{end}")


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise WindowError(f"unknown time zone {name!r}") from err


def is_known_zone(name: str) -> bool:
    try:
        zone(name)
    except WindowError:
        return False
    return True


def _as_utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def record_zones(
    record_timezone: Optional[str],
    policy: TimezonePolicy | str,
    campaign_zone: Optional[str],
) -> tuple[str, ...]:
    """The zones the window must hold in for one record.

    ``record_timezone`` is the space-separated text stored on the call record.
    Policy ``campaign`` (or a record with no usable zone) uses the campaign's zone.
    """
    if TimezonePolicy(policy) is TimezonePolicy.NUMBER and record_timezone:
        names = tuple(n for n in record_timezone.split() if is_known_zone(n))
        if names:
            return names
    return (campaign_zone,) if campaign_zone else ()


def is_callable(when: dt.datetime, zones: Iterable[str], window: CallingWindow) -> bool:
    """True when ``when`` is inside ``window`` in every zone (strictest); False for no zones."""
    utc = _as_utc(when)
    names = list(zones)
    if not names:
        return False
    return all(window.contains(utc.astimezone(zone(n)).time()) for n in names)


def next_callable(
    when: dt.datetime, zones: Sequence[str], window: CallingWindow, horizon_days: int = 3
) -> Optional[dt.datetime]:
    """Earliest UTC time >= ``when`` at which :func:`is_callable` holds, or None.

    The answer is ``when`` itself or a moment when one zone's window opens, so
    only those candidates are checked.  None if the zones' windows never overlap
    within ``horizon_days`` (e.g. zones twelve hours apart and a short window).
    Returns an aware UTC datetime.
    """
    utc = _as_utc(when)
    if not zones:
        return None
    if is_callable(utc, zones, window):
        return utc
    candidates = []
    for name in zones:
        tz = zone(name)
        local_day = utc.astimezone(tz).date()
        for offset in range(-1, horizon_days + 1):
            day = local_day + dt.timedelta(days=offset)
            opening = dt.datetime.combine(day, window.start, tzinfo=tz).astimezone(dt.timezone.utc)
            if opening > utc:
                candidates.append(opening)
    for candidate in sorted(candidates):
        if is_callable(candidate, zones, window):
            return candidate
    return None
