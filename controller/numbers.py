"""Phone number normalisation (pure: no database, no I/O).

Two layers, split so the bulk loader can run them in different processes:

* :func:`parse_number` – raw text to E.164, validity and the number's region.
  This is the expensive part (``phonenumbers.parse`` plus the metadata pattern
  match, ~30k numbers/s per core) and needs only phonenumbers' small metadata,
  so loader worker processes run it without loading the 100 MB geocoder data.
* :func:`describe` – city, state and time zones of a parsed number, from
  ``phonenumbers.geocoder`` and ``phonenumbers.timezone``.  Both look the
  number up by *longest matching prefix* of its E.164 digits.  Each country's
  keys in that data are at most a few digits long (7 for NANP: ``1`` + area
  code + exchange; computed from the data at first use, see
  :func:`prefix_key_length`), so the answer depends only on that many leading
  digits plus the number's region and whether its type is geographical.  We
  cache on exactly that key: correct (same answer as asking phonenumbers) and
  fast (one dict look-up for every number after the first of its exchange).

Reasons for rejecting a number are stable short codes (:class:`Reason`) plus a
human-readable message for the rejects file.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import re
from typing import Optional

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, phonenumberutil
from phonenumbers.phonemetadata import PhoneMetadata

logger = logging.getLogger(__name__)

# phonenumbers compiles its metadata patterns through re.compile and relies on
# re's cache of 512 entries.  Numbers from many regions (every NANP country is
# tried for a +1 number) overflow it and every call recompiles: about half the
# time went there.  Its documented switch keeps the (bounded) set compiled.
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()

#: phonenumbers refuses longer input anyway; we check first to keep messages short.
MAX_RAW_LENGTH = 250

UNKNOWN_TZ = "Etc/Unknown"
TIMEZONE_COLUMN_MAX = 200  # call_record.timezone

#: phonenumbers' own type helper: one metadata pattern pass gives both the
#: validity and the type.  ``is_valid_number`` + ``number_type`` would do that
#: pass four times for a NANP number.  Falls back to the public API if a future
#: phonenumbers release renames it (tests check both agree).
_TYPE_HELPER = getattr(phonenumberutil, "_number_type_helper", None)

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA",
    "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
    "Washington, D.C.": "DC", "Puerto Rico": "PR",
}


class Reason(str, enum.Enum):
    """Why a number was refused (the ``invalid`` bucket of the load summary)."""

    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    INVALID_COUNTRY_CODE = "invalid_country_code"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_LENGTH = "invalid_length"
    INVALID_AREA_CODE = "invalid_area_code"


@dataclasses.dataclass(frozen=True, slots=True)
class NumberRejection:
    reason: Reason
    message: str

    def __bool__(self) -> bool:  # lets callers write `if parsed:`
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedNumber:
    """A valid number: E.164 text, ISO region ("US", "GB") and whether it is geographical."""

    e164: str
    country: str
    geographical: bool


@dataclasses.dataclass(frozen=True)  # no slots: timezone_column is a cached_property
class Location:
    city: Optional[str]
    region: Optional[str]  # state / province
    timezones: tuple[str, ...]  # empty when unknown

    @property
    def timezone_text(self) -> Optional[str]:
        """Space-separated zone names, or None."""
        return " ".join(self.timezones) or None

    @functools.cached_property
    def timezone_column(self) -> Optional[str]:
        """What ``call_record.timezone`` stores: :attr:`timezone_text`, or None when it
        does not fit the column (NANP toll-free: 40+ zones, no usable local time;
        the campaign's zone applies, SPEC X1)."""
        text = self.timezone_text
        return text if text is None or len(text) <= TIMEZONE_COLUMN_MAX else None


@dataclasses.dataclass(frozen=True, slots=True)
class NormalisedNumber:
    e164: str
    country: str
    city: Optional[str]
    region: Optional[str]
    timezones: tuple[str, ...]

    @property
    def timezone_text(self) -> Optional[str]:
        return " ".join(self.timezones) or None


_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        Reason.INVALID_COUNTRY_CODE, "unknown country code (or no country code and no default region)"),
    NumberParseException.NOT_A_NUMBER: (Reason.NOT_A_NUMBER, "not a phone number"),
    NumberParseException.TOO_SHORT_AFTER_IDD: (Reason.TOO_SHORT, "too short after the international prefix"),
    NumberParseException.TOO_SHORT_NSN: (Reason.TOO_SHORT, "too short"),
    NumberParseException.TOO_LONG: (Reason.TOO_LONG, "too long"),
}

_POSSIBLE_ERRORS = {
    phonenumberutil.ValidationResult.INVALID_COUNTRY_CODE: (Reason.INVALID_COUNTRY_CODE, "unknown country code"),
    phonenumberutil.ValidationResult.TOO_SHORT: (Reason.TOO_SHORT, "too short"),
    phonenumberutil.ValidationResult.TOO_LONG: (Reason.TOO_LONG, "too long"),
    phonenumberutil.ValidationResult.INVALID_LENGTH: (Reason.INVALID_LENGTH, "wrong number of digits"),
}


def _is_geographical(ntype: int, country_code: int) -> bool:
    return phonenumberutil.is_number_type_geographical(ntype, country_code)


def _classify(numobj: phonenumbers.PhoneNumber) -> tuple[Optional[str], int]:
    """(region of the number or None, PhoneNumberType); UNKNOWN type = invalid."""
    region = phonenumberutil.region_code_for_number(numobj)
    if region is None:
        return None, PhoneNumberType.UNKNOWN
    if _TYPE_HELPER is None:  # pragma: no cover - future phonenumbers
        if not phonenumbers.is_valid_number(numobj):
            return region, PhoneNumberType.UNKNOWN
        return region, phonenumbers.number_type(numobj)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(numobj.country_code, region)
    if metadata is None:
        return region, PhoneNumberType.UNKNOWN
    if region != phonenumberutil.REGION_CODE_FOR_NON_GEO_ENTITY and (
        numobj.country_code != phonenumberutil.country_code_for_valid_region(region)
    ):
        return region, PhoneNumberType.UNKNOWN
    nsn = phonenumberutil.national_significant_number(numobj)
    return region, _TYPE_HELPER(nsn, metadata)


def parse_number(raw: object, default_region: Optional[str] = None) -> ParsedNumber | NumberRejection:
    """Normalise ``raw`` to E.164 and check it is a valid, dialable-looking number.

    ``default_region`` ("US") applies to numbers written without ``+``.
    Never raises for bad input: returns a :class:`NumberRejection` instead.
    """
    text = "" if raw is None else str(raw).strip()
    if not text:
        return NumberRejection(Reason.EMPTY, "no number")
    if len(text) > MAX_RAW_LENGTH:
        return NumberRejection(Reason.TOO_LONG, f"longer than {MAX_RAW_LENGTH} characters")
    numobj = _fast_nanp(text, default_region)
    if numobj is None:
        try:
            numobj = phonenumbers.parse(text, default_region)
        except NumberParseException as err:
            reason, message = _PARSE_ERRORS.get(err.error_type, (Reason.NOT_A_NUMBER, "not a phone number"))
            return NumberRejection(reason, message)
    region, ntype = _classify(numobj)
    if ntype == PhoneNumberType.UNKNOWN:
        possible = phonenumbers.is_possible_number_with_reason(numobj)
        if possible in _POSSIBLE_ERRORS:
            reason, message = _POSSIBLE_ERRORS[possible]
            return NumberRejection(reason, message)
        e164 = phonenumbers.format_number(numobj, phonenumbers.PhoneNumberFormat.E164)
        return NumberRejection(Reason.INVALID_AREA_CODE, f"invalid area code or number range ({e164})")
    e164 = phonenumbers.format_number(numobj, phonenumbers.PhoneNumberFormat.E164)
    return ParsedNumber(e164, region or "", _is_geographical(ntype, numobj.country_code))


#: A plainly written NANP number: optional +1 / 1, area code and exchange that
#: start with 2-9, usual separators, nothing else (no extension, no letters).
_NANP_RE = re.compile(
    r"(?:(\+1)|1)?[\s.\-]*(?:\(([2-9]\d\d)\)|([2-9]\d\d))[\s.\-]*([2-9]\d\d)[\s.\-]*(\d{4})"
)
_NANP_REGIONS = frozenset(phonenumberutil.COUNTRY_CODE_TO_REGION_CODE.get(1, ()))


def _fast_nanp(text: str, default_region: Optional[str]) -> Optional[phonenumbers.PhoneNumber]:
    """The PhoneNumber ``phonenumbers.parse`` would build for a plain NANP number, or None.

    ``parse`` is general (alpha characters, extensions, IDD prefixes, 240
    regions) and costs ~17 us; the bulk of a North American list is
    ``(415) 555-2671``-like and needs a regex.  Only the country code and
    national number matter for validity and E.164, and tests check this path
    agrees with ``parse`` on every format it accepts.  Anything else (or a
    non-NANP default region without ``+1``) goes to ``parse``.
    """
    match = _NANP_RE.fullmatch(text)
    if match is None:
        return None
    if not match[1] and (default_region or "").upper() not in _NANP_REGIONS:
        return None
    return phonenumbers.PhoneNumber(country_code=1, national_number=int((match[2] or match[3]) + match[4] + match[5]))


# --------------------------------------------------------------------------- location


@functools.lru_cache(maxsize=1)
def _prefix_lengths() -> tuple[dict[str, int], int]:
    """Per country calling code, the longest key phonenumbers' geocoder or
    time-zone data holds for it; plus the global maximum as a fallback.

    Country calling codes are prefix-free, so each key belongs to one code.
    """
    from phonenumbers.geodata import GEOCODE_DATA
    from phonenumbers.tzdata import TIMEZONE_DATA

    known = phonenumberutil.COUNTRY_CODE_TO_REGION_CODE
    lengths: dict[str, int] = {}
    for data in (GEOCODE_DATA, TIMEZONE_DATA):
        for key in data:
            for n in (1, 2, 3):
                if int(key[:n]) in known:
                    cc = key[:n]
                    break
            else:
                cc = key[:3]
            if len(key) > lengths.get(cc, 0):
                lengths[cc] = len(key)
    # Argentina-style mobile tokens are stripped before the geocoder looks the
    # number up, which shifts its prefix by the token's length.
    tokens = getattr(phonenumberutil, "_MOBILE_TOKEN_MAPPINGS", {})
    for code, token in tokens.items():
        cc = str(code)
        lengths[cc] = lengths.get(cc, len(cc)) + len(token)
    longest = max(lengths.values()) + max((len(t) for t in tokens.values()), default=0)
    return lengths, longest


def prefix_key_length(e164: str) -> int:
    """How many leading E.164 digits decide the geocoder and time-zone answers."""
    cached = _keylen_cache.get(e164[1:4])
    if cached is not None:
        return cached
    lengths, longest = _prefix_lengths()
    digits = e164[1:]
    if len(digits) >= 3:  # the first 3 digits always contain the whole country code
        _keylen_cache[digits[:3]] = _key_length(digits, lengths, longest)
        return _keylen_cache[digits[:3]]
    return _key_length(digits, lengths, longest)


_keylen_cache: dict[str, int] = {}


def _key_length(digits: str, lengths: dict[str, int], longest: int) -> int:
    for n in (1, 2, 3):
        if digits[:n] in lengths:
            return lengths[digits[:n]]
    # A code with no entries at all: the answer is country-level, the code decides.
    for n in (1, 2, 3):
        if int(digits[:n] or 0) in phonenumberutil.COUNTRY_CODE_TO_REGION_CODE:
            return n
    return longest


def _split_description(description: str, country: str) -> tuple[Optional[str], Optional[str]]:
    if not description:
        return None, None
    if country in ("US", "CA") or (country and phonenumberutil.country_code_for_region(country) == 1):
        city, sep, state = description.rpartition(", ")
        if sep:
            return city or None, US_STATES.get(state, state)
        # Only a state or province name ("New Jersey").
        return None, US_STATES.get(description, description)
    return description, None


_location_cache: dict[tuple[str, str, bool], Location] = {}
_cache_stats = {"hits": 0, "misses": 0}


def describe(parsed: ParsedNumber) -> Location:
    """City, state/province and time zones of a valid number (cached per prefix)."""
    return describe_e164(parsed.e164, parsed.country, parsed.geographical)


def describe_e164(e164: str, country: str, geographical: bool) -> Location:
    """:func:`describe` for the loader's plain tuples (no object per number).

    A non-geographical number (mobile in most countries, toll-free) gets
    country-level zones and no city, so its region alone is the key.
    """
    key = (e164[1 : 1 + prefix_key_length(e164)] if geographical else "", country, geographical)
    hit = _location_cache.get(key)
    if hit is not None:
        _cache_stats["hits"] += 1
        return hit
    _cache_stats["misses"] += 1
    location = _lookup_location(ParsedNumber(e164, country, geographical))
    _location_cache[key] = location
    return location


@functools.lru_cache(maxsize=512)
def _country_name(region: str) -> str:
    """English name of a region, as the geocoder falls back to (looked up once per region)."""
    from phonenumbers import geocoder

    display = getattr(geocoder, "_region_display_name", None)
    if display is not None:
        return display(region, "en")
    example = phonenumbers.example_number(region)  # pragma: no cover - future phonenumbers
    return geocoder.country_name_for_number(example, "en") if example else ""


@functools.lru_cache(maxsize=1)
def _prefix_data():
    from phonenumbers.geodata import GEOCODE_DATA, GEOCODE_LONGEST_PREFIX
    from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

    tokens = frozenset(str(cc) for cc in getattr(phonenumberutil, "_MOBILE_TOKEN_MAPPINGS", {54: "9"}))
    return GEOCODE_DATA, GEOCODE_LONGEST_PREFIX, TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX, tokens


def _lookup_location(parsed: ParsedNumber) -> Location:
    """On a cache miss: the same longest-prefix look-ups phonenumbers'
    ``time_zones_for_geographical_number`` and ``description_for_valid_number``
    do, on the E.164 digits we already have (no re-parse, no second validity
    check).  Non-geographical numbers and countries with a mobile token take
    phonenumbers' own functions.  Tests check both paths agree."""
    geo, geo_longest, tzdata, tz_longest, token_countries = _prefix_data()
    digits = parsed.e164[1:]
    if not parsed.geographical or any(digits.startswith(cc) for cc in token_countries):
        return _lookup_location_slow(parsed)
    zones: tuple[str, ...] = ()
    for n in range(min(tz_longest, len(digits)), 0, -1):
        found = tzdata.get(digits[:n])
        if found is not None:
            zones = tuple(found)
            break
    description = ""
    locale = f"en_{parsed.country}"
    for n in range(min(geo_longest, len(digits)), 0, -1):
        names = geo.get(digits[:n])
        if names is not None:
            name = names.get(locale, names.get("en"))
            if name is not None:
                description = name
                break
    if description == _country_name(parsed.country):
        description = ""
    city, region = _split_description(description, parsed.country)
    return Location(city, region, tuple(z for z in zones if z != UNKNOWN_TZ))


def _lookup_location_slow(parsed: ParsedNumber) -> Location:
    """Ask phonenumbers' public functions. The number is known valid, so the
    ``*_valid_*`` / geographical variants skip re-checking validity."""
    from phonenumbers import geocoder, timezone

    numobj = phonenumbers.parse(parsed.e164, None)
    if parsed.geographical:
        zones = timezone.time_zones_for_geographical_number(numobj)
        # region=the number's own region: the description omits the country name.
        description = geocoder.description_for_valid_number(numobj, "en", region=parsed.country)
        if description == _country_name(parsed.country):
            description = ""
    else:
        zones = timezone.time_zones_for_number(numobj)
        description = ""  # mobile / toll-free: no city to speak of
    city, region = _split_description(description, parsed.country)
    return Location(city, region, tuple(z for z in zones if z != UNKNOWN_TZ))


def cache_info() -> dict[str, int]:
    return {"entries": len(_location_cache), **_cache_stats}


def normalise(raw: object, default_region: Optional[str] = None) -> NormalisedNumber | NumberRejection:
    """Both layers at once: what single-number callers (DNC add, web leads) want."""
    parsed = parse_number(raw, default_region)
    if not parsed:
        return parsed
    loc = describe(parsed)
    return NormalisedNumber(parsed.e164, parsed.country, loc.city, loc.region, loc.timezones)


def valid_region(region: Optional[str]) -> bool:
    return region is None or region.upper() in phonenumbers.SUPPORTED_REGIONS
