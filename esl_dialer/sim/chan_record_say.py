"""mod_dptools' ``record`` and ``say`` for the simulated switch (no audio).

``record <path> [<time_limit_secs>] [<silence_thresh>] [<silence_hits>]``
follows ``record_function`` (mod_dptools.c) and ``switch_ivr_record_file``
(switch_ivr_play_say.c): pre-answer; a relative path is put under the
``sound_prefix`` variable (else the sounds directory); RECORD_START with
``Record-File-Path``; the recording ends on the time limit, on a DTMF that is
one of ``playback_terminators`` (default ``*``; ``any``/``none``; the digit
goes to ``playback_terminator_used``), on ``uuid_break``, on hang-up, or --
when a silence threshold is given -- after ``silence_hits`` seconds (default
3) of silence (``silence_hits_exhausted=true``); then ``record_seconds``,
``record_ms``, ``record_samples`` and RECORD_STOP.  Other digits are read and
dropped, as ``on_dtmf`` does; ``record_restart_limit_on_dtmf`` is honoured.

The simulated party speaks for ``record_speech_s`` seconds (config, or the
channel variable ``sim_record_speech_s``), then goes silent and presses its
pending DTMF, if any.  The file written is silence of the recorded length:
a valid 8 kHz mono 16-bit WAV for ``.wav`` (stdlib ``wave``), raw 8 kHz
u-law silence for other extensions; without an extension FreeSWITCH appends
the codec name (``.PCMU``).  Parent directories are created (mod_sndfile
does so for writes).  A file that cannot be written hangs the call up
DESTINATION_OUT_OF_ORDER, as ``switch_ivr_record_file`` does.

``say <module_name>[:<lang>] <say_type> <say_method> [<say_gender>] <text>``
follows ``say_function``: anything but 4 or 5 arguments only logs the usage;
an unknown module or a text the module cannot parse plays nothing.  Like
mod_say_en (``run_callback`` + one ``switch_ivr_play_file``) the files are
played as ONE ``file_string://`` playback (PLAYBACK_START/STOP); each file
lasts ``say_item_s``.  Numbers in English use mod_say_en's files
(``digits/3.wav``, ``digits/hundred.wav`` ...); other types and languages
are spelled one file per character.
"""
from __future__ import annotations

import logging
import os
import re
import wave
from typing import TYPE_CHECKING

from .chan_session import BreakInterrupt, Interrupt, Session

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any as AppRunner  # chan_apps imports this module: no import back

logger = logging.getLogger(__name__)

NONE = "_none_"
RATE = 8000  # samples per second of the simulated codec (PCMU)
ANY_TERMINATORS = "1234567890*#"

# switch_types.h / switch_ivr_say.c: SAY_TYPE_NAMES and SAY_METHOD_NAMES
SAY_TYPES = frozenset({
    "NUMBER", "ITEMS", "PERSONS", "MESSAGES", "CURRENCY", "TIME_MEASUREMENT", "CURRENT_DATE", "CURRENT_TIME",
    "CURRENT_DATE_TIME", "TELEPHONE_NUMBER", "TELEPHONE_EXTENSION", "URL", "IP_ADDRESS", "EMAIL_ADDRESS",
    "POSTAL_ADDRESS", "ACCOUNT_NUMBER", "NAME_SPELLED", "NAME_PHONETIC", "SHORT_DATE_TIME",
})
SAY_METHODS = frozenset({"N/A", "PRONOUNCED", "ITERATED", "COUNTED", "PRONOUNCED_YEAR"})
# The say modules shipped with FreeSWITCH (src/mod/say/mod_say_*).
SAY_MODULES = frozenset({"de", "en", "es", "es_ar", "fa", "fr", "he", "hr", "hu", "it", "ja", "nl", "pl", "pt",
                         "ru", "sv", "th", "zh"})
_COUNT_TYPES = frozenset({"NUMBER", "ITEMS", "PERSONS", "MESSAGES"})


class SayError(ValueError):
    """The say module cannot say this text (mod_say_en logs "Parse Error!")."""


def atoi(text: str | None) -> int:
    """C ``atoi``: optional sign and leading digits, 0 when there are none."""
    m = re.match(r"\s*([+-]?\d+)", text or "")
    return int(m.group(1)) if m else 0


def terminator_set(value: str | None) -> str:
    """``on_dtmf`` in mod_dptools: unset -> ``*``, ``any`` -> every digit, ``none`` -> nothing."""
    if value is None:
        return "*"
    if value.lower() == "any":
        return ANY_TERMINATORS
    if value.lower() == "none":
        return ""
    return value


def resolve_record_path(path: str, prefix: str | None) -> tuple[str, bool]:
    """(file, raw): relative paths go under ``prefix``; no extension -> ``.PCMU`` (a raw file)."""
    if "://" in path:
        return path, False
    if prefix and not os.path.isabs(path):
        path = os.path.join(prefix, path)
    base = os.path.basename(path)
    if "." not in base:
        return f"{path}.PCMU", True
    return path, base.rsplit(".", 1)[1].lower() != "wav"


# -- say ---------------------------------------------------------------------------
def _en_group(a: int, b: int, c: int, what: str | None) -> list[str]:
    """mod_say_en play_group(): hundreds, tens/teens, ones, then the group word."""
    files: list[str] = []
    if a:
        files += [f"digits/{a}", "digits/hundred"]
    if b:
        if b > 1:
            files.append(f"digits/{b}0")
        else:
            files.append(f"digits/1{c}")
            c = 0
    if c:
        files.append(f"digits/{c}")
    if what and (a or b or c):
        files.append(what)
    return files


def en_number_files(text: str, method: str) -> list[str]:
    """The files mod_say_en says a count with (commas stripped, at most 9 digits)."""
    digits = text.replace(",", "")
    if not digits.isdigit() or len(digits) > 9:
        raise SayError(f"cannot say {text!r} as a number")
    if method == "ITERATED":
        return [f"digits/{d}" for d in digits]
    n = int(digits)
    if n == 0:
        return ["digits/0"]
    places = [int(d) for d in f"{n:09d}"]
    return (_en_group(*places[0:3], "digits/million") + _en_group(*places[3:6], "digits/thousand")
            + _en_group(*places[6:9], None))


def say_files(module: str, say_type: str, method: str, text: str) -> list[str]:
    """The sound files (without extension) the say module would play for ``text``."""
    lang = module.split(":", 1)[0].lower()
    if lang not in SAY_MODULES:
        raise SayError(f"invalid SAY Interface [{lang}]")
    say_type, method = say_type.upper(), method.upper()
    if say_type not in SAY_TYPES:
        raise SayError(f"unknown say type {say_type!r}")
    if method not in SAY_METHODS:
        raise SayError(f"unknown say method {method!r}")
    if lang == "en" and say_type in _COUNT_TYPES:
        return en_number_files(text, method)
    files = [f"digits/{ch}" if ch.isdigit() else f"ascii/{ord(ch.lower())}" for ch in text if ch.isalnum()]
    if not files:
        raise SayError(f"nothing to say in {text!r}")
    return files


def say_path(files: list[str], ext: str = "wav") -> str:
    """switch_say_file(): ``file_string://a.wav!b.wav``."""
    return "file_string://" + "!".join(f"{f}.{ext}" for f in files)


# -- the applications --------------------------------------------------------------
def app_say(runner: "AppRunner", session: Session, arg: str) -> str:
    ch = session.ch
    argv = arg.split(None, 4)
    if len(argv) not in (4, 5):
        logger.warning("sim call %s: say: Usage: <module_name>[:<lang>] <say_type> <say_method> [<say_gender>] "
                       "<text>, got %r", ch.uuid, arg)
        return NONE
    ch.variables.pop("playback_terminator_used", None)
    text = argv[3] if len(argv) == 4 else argv[4]
    try:
        files = say_files(argv[0], argv[1], argv[2], text)
    except SayError as err:
        logger.warning("sim call %s: say %s: %s", ch.uuid, arg, err)
        return NONE
    runner.play(session, say_path(files), seconds=len(files) * runner.switch.config.say_item_s)
    return NONE


def _write_silence(path: str, raw: bool, samples: int) -> None:
    if raw:
        with open(path, "wb") as fh:
            fh.write(b"\xff" * samples)  # u-law silence
        return
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(b"\x00\x00" * samples)


def app_record(runner: "AppRunner", session: Session, arg: str) -> str:
    sw = runner.switch
    ch = session.ch
    argv = arg.split(None, 3)
    if not argv:
        logger.warning("sim call %s: record: No file specified.", ch.uuid)
        return NONE
    limit = max(0, atoi(argv[1].lstrip("+"))) if len(argv) > 1 else 0
    thresh = max(0, atoi(argv[2])) if len(argv) > 2 else 0
    hits = max(0, atoi(argv[3])) if len(argv) > 3 else 0
    ch.variables.pop("playback_terminator_used", None)
    if not ch.answered:
        sw.progress(ch, media=True)  # switch_channel_pre_answer
    path, raw = resolve_record_path(argv[0], ch.variables.get("sound_prefix") or sw.config.sounds_dir or None)
    try:  # the file is opened before RECORD_START; a failure tears the call down
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        _write_silence(path, raw, 0)
    except (OSError, wave.Error) as err:
        logger.warning("sim call %s: record: cannot write %s: %s", ch.uuid, path, err)
        sw.hangup(ch, "DESTINATION_OUT_OF_ORDER")
        return NONE
    try:
        speech_s = max(0.0, float(ch.variables.get("sim_record_speech_s", sw.config.record_speech_s)))
    except ValueError:
        speech_s = sw.config.record_speech_s
    silence_end = speech_s + (hits or 3) if thresh else None
    terminators = terminator_set(ch.variables.get("playback_terminators"))
    restart_on_dtmf = ch.variables.get("record_restart_limit_on_dtmf", "").lower() in ("true", "yes", "on", "1")
    ch.variables["silence_hits_exhausted"] = "false"
    ch.recordings.append(path)
    start = limit_start = sw.clock.now()
    sw.fire_channel("RECORD_START", ch, [("Record-File-Path", path)])
    session.playing += 1  # uuid_break stops a recording as it stops a playback
    reason = "limit"

    def on_digit(digit: str) -> bool:
        nonlocal limit_start
        if limit and restart_on_dtmf:
            limit_start = sw.clock.now()
        if digit in terminators:
            ch.variables["playback_terminator_used"] = digit
            return True
        return False

    try:
        while True:
            if ch.dtmf_buffer:  # digits that arrived by uuid_send_dtmf (their DTMF events are out already)
                digit, ch.dtmf_buffer = ch.dtmf_buffer[0], ch.dtmf_buffer[1:]
                if on_digit(digit):
                    reason = "terminator"
                    break
                continue
            now = sw.clock.now()
            elapsed = now - start
            if ch.pending_dtmf and elapsed >= speech_s:  # the party has spoken, now presses its keys
                digit, ch.pending_dtmf = ch.pending_dtmf[0], ch.pending_dtmf[1:]
                runner.dtmf_event(session, digit)
                if on_digit(digit):
                    reason = "terminator"
                    break
                continue
            waits = []
            if limit:
                waits.append(limit - (now - limit_start))
            if silence_end is not None:
                waits.append(silence_end - elapsed)
            if ch.pending_dtmf:
                waits.append(speech_s - elapsed)
            wait = min(waits) if waits else None
            if wait is not None and wait <= 0:
                if limit and now - limit_start >= limit:
                    reason = "limit"
                    break
                if silence_end is not None and elapsed >= silence_end:
                    reason = "silence"
                    ch.variables["silence_hits_exhausted"] = "true"
                    break
                wait = 0.001  # pending digits are due: go round once more
            session.block(wait, breakable=True, until=lambda: bool(ch.dtmf_buffer))
    except BreakInterrupt:
        reason = "break"
    except Interrupt:
        reason = "hangup"
        raise
    finally:
        session.playback_ended()
        recorded = max(0.0, sw.clock.now() - start)
        if limit and reason == "limit":
            recorded = min(recorded, limit + (limit_start - start))
        if silence_end is not None and reason == "silence":
            recorded = min(recorded, silence_end)
        samples = int(recorded * RATE)
        try:
            _write_silence(path, raw, samples)
        except (OSError, wave.Error) as err:
            logger.warning("sim call %s: record: cannot write %s: %s", ch.uuid, path, err)
        ch.variables.update({"record_seconds": str(samples // RATE), "record_ms": str(samples // (RATE // 1000)),
                             "record_samples": str(samples)})
        ch.note(sw.clock.now(), "record", f"{path} {samples // (RATE // 1000)}ms {reason}")
        sw.fire_channel("RECORD_STOP", ch, [("Record-File-Path", path)])
    return NONE
