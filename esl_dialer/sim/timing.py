"""How long the simulated switch takes to do things (``[timing]`` in the sim TOML).

The ``realistic`` profile (the default) copies the delays measured on a real
FreeSWITCH 1.10.12 in ``tests/esl-captures`` (``e_timing`` and
``f_outbound_break``, timing table in its README).  FreeSWITCH runs each
channel on a 20 ms media clock, so every delay is a whole number of
``media_step_ms`` steps.  The ``ideal`` profile sets every delay to zero (the
simulator as it was before): keep it for unit tests of pure logic; end-to-end
tests run on ``realistic``.

All values are *simulated* time: the switch multiplies them by its
``time_scale`` like every other duration (``SimClock.real``), so with
``time_scale = 0.05`` a 20 ms step lasts 1 ms of wall time, and event
timestamps (Event-Date-Timestamp, simulated clock) still show 20 ms apart.
Plain data: no simulator imports.
"""
from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("realistic", "ideal")


@dataclass(frozen=True)
class TimingConfig:
    profile: str = "realistic"
    # FreeSWITCH's media clock: one frame of 20 ms; delays below are multiples of it.
    media_step_ms: int = 20
    # e_timing: `api uuid_bridge A B` reply to CHANNEL_UNPARK of both legs: 20-22 ms (median 21).
    bridge_unpark_ms: int = 20
    # e_timing: reply to CHANNEL_EXECUTE uuid_bridge and CHANNEL_BRIDGE: 61-63 ms (median 62).
    bridge_complete_ms: int = 60
    # e_timing: uuid_kill of one bridged leg to the other leg's CHANNEL_HANGUP: 20-23 ms (median 21).
    hangup_other_leg_ms: int = 20
    # e_timing: uuid_broadcast on a parked, unbridged leg to PLAYBACK_START: 201-202 ms (n=5).
    broadcast_parked_ms: int = 200
    # e_timing: uuid_broadcast ... both after CHANNEL_BRIDGE to PLAYBACK_START: leg B 361 ms ...
    broadcast_bridged_b_ms: int = 360
    # ... leg A 381-382 ms (2 pairs).
    broadcast_bridged_a_ms: int = 380
    # e_timing: uuid_broadcast right after the uuid_bridge reply: CHANNEL_EXECUTE playback 20-23 ms
    # later, then at once EXECUTE_COMPLETE "PLAYBACK ERROR" (3/3 pairs).
    broadcast_lost_ms: int = 20
    # e_timing / f_outbound_break: uuid_break to PLAYBACK_STOP (break): 20-21 ms; nested playbacks
    # stop innermost first, one per step (+20, +40, +60 ms).
    break_ms: int = 20
    # f_outbound_break: event-lock queue after `uuid_break <uuid>`: the next queued execute starts
    # 20 ms after the broken one's PLAYBACK_STOP (after a playback that ends by itself: at once).
    next_after_break_ms: int = 20
    # f_outbound_break / b_outbound: outbound `sendmsg` execute +OK to CHANNEL_EXECUTE: 20-21 ms (n=16).
    execute_ms: int = 20
    # e_timing: PLAYBACK_START to PLAYBACK_STOP of the 1.0 s WAV: 1002-1004 ms: a file plays its
    # length rounded up to whole media frames.
    round_playback_to_frames: bool = True

    def seconds(self, name: str) -> float:
        """A delay field in (simulated) seconds."""
        return float(getattr(self, name)) / 1000.0

    def frames(self, seconds: float) -> float:
        """``seconds`` rounded up to whole media steps (the media clock), when the profile does so."""
        step = self.media_step_ms / 1000.0
        if not self.round_playback_to_frames or step <= 0 or seconds <= 0:
            return seconds
        n = -(-round(seconds * 1e6) // round(step * 1e6))  # ceil without float noise
        return n * step

    @property
    def delayed(self) -> bool:
        """True when the profile has switch-side delays (uuid_bridge completes after its reply)."""
        return self.bridge_complete_ms > 0


IDEAL = TimingConfig(
    profile="ideal", media_step_ms=0, bridge_unpark_ms=0, bridge_complete_ms=0, hangup_other_leg_ms=0,
    broadcast_parked_ms=0, broadcast_bridged_b_ms=0, broadcast_bridged_a_ms=0, broadcast_lost_ms=0,
    break_ms=0, next_after_break_ms=0, execute_ms=0, round_playback_to_frames=False,
)
REALISTIC = TimingConfig()


class TimingConfigError(ValueError):
    """The ``[timing]`` table is invalid; the message names the key."""


def profile(name: str) -> TimingConfig:
    if name == "realistic":
        return REALISTIC
    if name == "ideal":
        return IDEAL
    raise TimingConfigError(f"timing.profile: expected one of {', '.join(PROFILES)}, got {name!r}")
