"""Agents' greeting files (D4): check an uploaded WAV and install it where the switch plays it.

The worker plays ``<greetings_dir>/<ext>.wav`` with ``uuid_broadcast ... both``;
FreeSWITCH's mod_sndfile reads PCM WAV and resamples to the call's rate, so
any mono or stereo 16-bit PCM WAV of a sane length will do.  The file is
written atomically (temporary name, then rename) so a call never plays half a
file.
"""
from __future__ import annotations

import os
import re
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

MAX_SECONDS = 30.0  # a greeting that runs longer keeps the party waiting for the agent
MIN_SECONDS = 0.5
RATES = (8000, 16000, 22050, 32000, 44100, 48000)
_EXT_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


class GreetingError(ValueError):
    """The file cannot serve as a greeting; the message says why."""


@dataclass(frozen=True)
class GreetingInfo:
    path: Path
    seconds: float
    rate: int
    channels: int


def check_wav(data: bytes) -> tuple[float, int, int]:
    """Return (seconds, rate, channels) of a PCM WAV, or raise GreetingError."""
    import io

    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, channels, width, frames = (wav.getframerate(), wav.getnchannels(),
                                             wav.getsampwidth(), wav.getnframes())
    except (wave.Error, EOFError) as err:
        raise GreetingError(f"not a PCM WAV file: {err}") from None
    if width != 2:
        raise GreetingError(f"samples must be 16-bit PCM, got {8 * width}-bit")
    if channels not in (1, 2):
        raise GreetingError(f"mono or stereo only, got {channels} channels")
    if rate not in RATES:
        raise GreetingError(f"sample rate {rate} Hz is not one of {', '.join(map(str, RATES))}")
    seconds = frames / rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise GreetingError(f"a greeting must last {MIN_SECONDS:g}-{MAX_SECONDS:g} s, this one lasts {seconds:.1f} s")
    return seconds, rate, channels


def install_greeting(data: bytes, agent: str, greetings_dir: str | os.PathLike) -> GreetingInfo:
    """Check ``data`` and write it as ``<greetings_dir>/<agent>.wav`` atomically."""
    if not _EXT_RE.match(agent):
        raise GreetingError(f"agent extension {agent!r} is not a plain extension")
    seconds, rate, channels = check_wav(data)
    folder = Path(greetings_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{agent}.wav"
    fd, tmp = tempfile.mkstemp(prefix=f".{agent}.", suffix=".wav", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # FreeSWITCH runs as its own user
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return GreetingInfo(target, seconds, rate, channels)
