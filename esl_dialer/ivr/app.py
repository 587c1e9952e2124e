"""One inbound call through the local IVR (SPEC R1, R2, R4-R9).

The call answers, walks its menu (:mod:`.menu`), and when the menu reaches a
``remote`` node asks that remote center for a *proxy* in its queue (R4).  The
caller stays here with music on hold and a position / expected-wait
announcement every ``announce_every_s`` (R7): no leg to the remote center
exists.  Progress arrives from the center's :class:`ProgressHub` (R5).  When
the proxy is close enough (R6: the remote's ``bridge_now``: next in line, an
operator reserved, or an expected wait under the bridge set-up time; or the
local ``bridge_position``), a one-time token is fetched and the caller is
bridged with it as SIP header ``X-Dialer-Token`` (``sip_h_X-Dialer-Token``)
and channel variable ``dialer_token``.  Hang-up cancels the proxy at once; a
refusal, a time-out or a failed bridge is retried once, then the fallback
runs (R9): voicemail recording, callback request (a scheduled record, P9),
or a polite hang-up.

Every FreeSWITCH application used is stock mod_dptools: answer, playback,
play_and_get_digits, set, bridge, record, transfer, hangup; plus the
``uuid_break`` API to stop the music.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Mapping

import gevent
import gevent.queue

from ..esl import commands as cmds
from .menu import (
    Digits, Hangup, Lookup, LookupDone, Menu, MenuRun, Play, PlayAndGetDigits, PlayDone, Remote,
    RemoteDone, Transfer,
)
from .remote_client import ApiError, ControllerUnavailable, ProgressHub, RemoteCenter, http_get_json
from .session import CallerGone, CommandTimeout, IvrSession

logger = logging.getLogger(__name__)

PLAY_TIMEOUT_S = 900.0  # longest prompt we would ever play
MAX_CALL_S = 4 * 3600.0  # longest bridged conversation we wait for
FINAL_STATES = frozenset({"done", "cancelled", "expired", "failed"})


@dataclasses.dataclass
class IvrSettings:
    """Everything a call needs; shared by all calls of one server."""

    menu_provider: Callable[[], Menu]
    centers: Mapping[str, RemoteCenter] = dataclasses.field(default_factory=dict)
    hubs: Mapping[str, ProgressHub] = dataclasses.field(default_factory=dict)
    linger_s: int = 10
    moh: str = "local_stream://moh"
    announce_every_s: float = 30.0
    announce_prompt: str = "ivr/ivr-you_are_number.wav"
    wait_prompt: str = "ivr/ivr-hold_connect_call.wav"
    # Expected wait (R7): "<wait_time_prompt> N minutes", with mod_say_en's time files.
    # The stock sound set has no "your expected wait is" prompt: record one and set it here;
    # empty means the minutes follow the position directly.
    wait_time_prompt: str = ""
    bridge_position: int = 1  # R6 local rule, on top of the remote's bridge_now hint
    bridge_setup_s: float = 5.0
    bridge_timeout_s: int = 30  # originate timeout of the remote leg
    max_wait_s: float = 3600.0  # give up waiting (then fallback)
    retry_delay_s: float = 1.0
    fallback: str = "voicemail"  # voicemail | callback | hangup
    voicemail_dir: str = "/var/lib/freeswitch/recordings/ivr"
    voicemail_prompt: str = "voicemail/vm-record_message.wav"
    voicemail_max_s: int = 120
    callback_center: str | None = None  # a RemoteCenter entry naming the LOCAL controller
    callback_campaign: str = "callbacks"
    callback_prompt: str = "ivr/ivr-thank_you.wav"
    sorry_prompt: str = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    command_timeout_s: float = 10.0
    on_call_end: Callable[["CallReport"], None] | None = None


@dataclasses.dataclass
class CallReport:
    """What happened to one call (logs, tests, the benchmark)."""

    uuid: str
    caller: str
    path: list[str] = dataclasses.field(default_factory=list)
    outcome: str = "unknown"  # bridged | voicemail | callback | hangup | transfer | caller_hangup | error
    proxy_id: str | None = None
    proxy_created_at: float | None = None
    bridge_started_at: float | None = None
    bridge_answered: bool = False
    ended_at: float | None = None
    cancelled_proxy: bool = False
    attempts: int = 0
    announcements: int = 0
    error: str | None = None


def number_files(n: int) -> list[str]:
    """The stock en sound files (sounds/en/us/callie/digits) that say ``n`` (0-999, else digit by digit)."""
    if n < 0 or n > 999:
        return [f"digits/{d}.wav" for d in str(abs(n))]
    files: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        files += [f"digits/{hundreds}.wav", "digits/hundred.wav"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        files.append(f"digits/{tens * 10}.wav")
        if ones:
            files.append(f"digits/{ones}.wav")
    elif rest or not files:
        files.append(f"digits/{rest}.wav")
    return files


def wait_files(expected_wait_s: Any, prompt: str = "") -> list[str]:
    """The files that say an expected wait in whole minutes (at least one), or nothing when unknown."""
    if not isinstance(expected_wait_s, (int, float)) or isinstance(expected_wait_s, bool) or expected_wait_s <= 0:
        return []
    minutes = max(1, round(expected_wait_s / 60))
    unit = "time/minute.wav" if minutes == 1 else "time/minutes.wav"
    return ([prompt] if prompt else []) + number_files(minutes) + [unit]


class RemoteFailed(Exception):
    """The remote center refused, timed out, or the bridge failed."""


class IvrCall:
    """The per-call application: ``run()`` is the call's greenlet body."""

    def __init__(self, session: IvrSession, settings: IvrSettings) -> None:
        self.session = session
        self.settings = settings
        data = session.session_data or {}
        self.uuid = data.get("Unique-ID") or data.get("variable_uuid") or "?"
        self.caller = data.get("Caller-Caller-ID-Number") or data.get("Channel-Caller-ID-Number") or ""
        self.report = CallReport(uuid=self.uuid, caller=self.caller)
        self._proxy: tuple[RemoteCenter, str] | None = None  # live proxy to cancel on hang-up
        self._moh = None  # AsyncResult of the running music
        self._walk: MenuRun | None = None

    # ------------------------------------------------------------ the call

    def run(self) -> CallReport:
        s = self.session
        try:
            s.send(cmds.MYEVENTS)
            s.send(cmds.linger(self.settings.linger_s))
            s.execute("answer", timeout=self.settings.command_timeout_s)
            menu = self.settings.menu_provider()
            walk = self._walk = MenuRun(menu, {"ani": self.caller, "uuid": self.uuid,
                                               "dnis": (s.session_data or {}).get("Caller-Destination-Number", "")})
            action = walk.start()
            while True:
                event = self._perform(action)
                if event is None:
                    break
                action = walk.feed(event)
        except CallerGone:
            if self.report.outcome in ("unknown",):
                self.report.outcome = "caller_hangup"
            logger.info("call %s: caller %s hung up", self.uuid, self.caller)
        except CommandTimeout as err:
            self.report.outcome, self.report.error = "error", str(err)
            logger.warning("call %s: switch did not answer: %s", self.uuid, err)
        except Exception as err:  # noqa: BLE001 - one bad call must never take the server down
            self.report.outcome, self.report.error = "error", repr(err)
            logger.exception("call %s: IVR failed", self.uuid)
        finally:
            if self._walk is not None:
                self.report.path = list(self._walk.path)
            self._cancel_proxy("caller_hangup" if s.gone.is_set() else "ivr_ended")
            self._hangup_quietly()
            self.report.ended_at = time.monotonic()
            if self.settings.on_call_end:
                try:
                    self.settings.on_call_end(self.report)
                except Exception:  # noqa: BLE001
                    logger.exception("call %s: on_call_end hook failed", self.uuid)
        return self.report

    def _perform(self, action) -> Any:
        handler = {
            Play: self._play, PlayAndGetDigits: self._digits, Lookup: self._lookup,
            Remote: self._remote, Transfer: self._transfer, Hangup: self._hangup,
        }[type(action)]
        return handler(action)

    # ------------------------------------------------------------ simple actions

    def _play(self, action: Play) -> PlayDone:
        self.session.execute("playback", cmds.playback_arg(action.prompt), timeout=PLAY_TIMEOUT_S)
        return PlayDone()

    def _digits(self, a: PlayAndGetDigits) -> Digits:
        # mod_dptools: play_and_get_digits <min> <max> <tries> <timeout ms> <terminators>
        #   <file> <invalid_file> <var_name> <regexp> [<digit_timeout ms>]
        arg = cmds.play_and_get_digits_arg(a.min_digits, a.max_digits, a.tries, a.timeout_ms, a.terminators,
                                           a.prompt, a.invalid_prompt, a.variable, a.regex, a.digit_timeout_ms)
        worst = a.tries * (a.timeout_ms + a.max_digits * a.digit_timeout_ms) / 1000.0 + 120.0
        done = self.session.execute("play_and_get_digits", arg, timeout=worst)
        value = done.get(f"variable_{a.variable}")
        return Digits(value if value not in (None, "", "_undef_") else None)

    def _lookup(self, action: Lookup) -> LookupDone:
        key = next((c.api_key for c in self.settings.centers.values() if c.owns(action.url)), None)
        try:
            data = http_get_json(action.url, action.timeout_s, api_key=key)
        except (ControllerUnavailable, OSError, TimeoutError, ValueError) as err:
            logger.warning("call %s: look-up %s failed: %s", self.uuid, action.url, err)
            return LookupDone(False)
        self.session.raise_if_gone()
        return LookupDone(True, data)

    def _transfer(self, action: Transfer) -> None:
        # mod_dptools: transfer <destination_number> [<dialplan> [<context>]]
        self.session.execute("transfer", cmds.transfer_arg(action.destination, action.dialplan, action.context),
                             timeout=self.settings.command_timeout_s)
        self.report.outcome = "transfer"
        return None

    def _hangup(self, action: Hangup) -> None:
        if action.prompt:
            self.session.execute("playback", cmds.playback_arg(action.prompt), timeout=PLAY_TIMEOUT_S)
        if self.report.outcome == "unknown":
            self.report.outcome = "hangup"
        self.session.execute("hangup", cmds.hangup_arg(action.cause), timeout=self.settings.command_timeout_s)
        return None

    def _hangup_quietly(self) -> None:
        if not self.session.gone.is_set():
            try:
                self.session.execute("hangup", "NORMAL_CLEARING", timeout=2.0)
            except (CallerGone, CommandTimeout):
                pass

    # ------------------------------------------------------------ the remote part

    def _remote(self, action: Remote) -> RemoteDone:
        center = self.settings.centers.get(action.center)
        if center is None:
            logger.error("call %s: menu names unknown remote center %r", self.uuid, action.center)
            return RemoteDone(self._fallback(action))
        for attempt in (1, 2):  # R9: retried once, then the fallback
            self.report.attempts = attempt
            try:
                self._wait_and_bridge(center, action.skill)
                self.report.outcome = "bridged"
                return RemoteDone("bridged")
            except RemoteFailed as err:
                logger.warning("call %s: remote %s attempt %d failed: %s", self.uuid, center.name, attempt, err)
                self._cancel_proxy("retry" if attempt == 1 else "fallback")
                if attempt == 1:
                    self._sleep(self.settings.retry_delay_s)
        return RemoteDone(self._fallback(action))

    def _sleep(self, seconds: float) -> None:
        if self.session.gone.wait(seconds):
            raise CallerGone()

    def _wait_and_bridge(self, center: RemoteCenter, skill: str) -> None:
        s = self.settings
        try:
            snap = center.create_proxy(skill, self.caller, data={"uuid": self.uuid})
        except (ControllerUnavailable, ApiError) as err:
            raise RemoteFailed(f"proxy refused: {err}") from None
        proxy_id = snap["id"]
        self._proxy = (center, proxy_id)
        self.report.proxy_id = proxy_id
        self.report.proxy_created_at = time.monotonic()
        logger.info("call %s: proxy %s at %s/%s, position %s", self.uuid, proxy_id, center.name, skill,
                    snap.get("position"))
        hub = s.hubs.get(center.name)
        updates = hub.watch(proxy_id) if hub else gevent.queue.Queue()

        def on_gone(_event) -> None:
            updates.put(None)  # wakes the wait at once: R9 cancels without delay

        self.session.gone.rawlink(on_gone)
        try:
            self._hold_until_near_head(snap, updates)
        finally:
            self.session.gone.unlink(on_gone)
            if hub:
                hub.unwatch(proxy_id)
        self._bridge(center, skill, proxy_id)

    def _near_head(self, snap: Mapping[str, Any]) -> bool:
        if snap.get("state") == "offered" or snap.get("bridge_now"):
            return True
        if snap.get("state") != "waiting":
            return False
        position, wait = snap.get("position"), snap.get("expected_wait_s")
        if isinstance(position, int) and 0 < position <= self.settings.bridge_position:
            return True
        return isinstance(wait, (int, float)) and wait <= self.settings.bridge_setup_s

    def _hold_until_near_head(self, snap: Mapping[str, Any], updates: gevent.queue.Queue) -> None:
        """R7: music and announcements here until the proxy nears the head (R6)."""
        s = self.settings
        started = time.monotonic()
        next_announce = started + s.announce_every_s
        first = True
        while True:
            self.session.raise_if_gone()
            if snap.get("state") in FINAL_STATES:
                raise RemoteFailed(f"proxy {snap.get('state')} ({snap.get('end_reason')})")
            if self._near_head(snap):
                self._stop_music()
                return
            if first:
                self._announce(snap, intro=True)
                first = False
            if self._moh is None or self._moh.ready():
                self._moh = self.session.start("playback", cmds.playback_arg(s.moh))
            now = time.monotonic()
            if now - started > s.max_wait_s:
                raise RemoteFailed("waited too long")
            if now >= next_announce:
                self._stop_music()
                self._announce(snap)
                next_announce = time.monotonic() + s.announce_every_s
                continue
            try:
                update = updates.get(timeout=max(0.05, min(next_announce - now, 1.0)))
            except gevent.queue.Empty:
                continue
            if update is None:
                raise CallerGone()
            snap = update

    def _announce(self, snap: Mapping[str, Any], intro: bool = False) -> None:
        """Position in line and expected wait, spoken with the stock sound files (one ``playback`` of a file_string)."""
        self.report.announcements += 1
        files = [self.settings.wait_prompt] if intro else []
        position = snap.get("position")
        if isinstance(position, int) and position > 0:
            files += [self.settings.announce_prompt, *number_files(position)]
        files += wait_files(snap.get("expected_wait_s"), self.settings.wait_time_prompt)
        if files:
            # mod_dptools playback of file_string://a!b!c plays the files in a row.
            self.session.execute("playback", cmds.file_string(files), timeout=PLAY_TIMEOUT_S)

    def _stop_music(self) -> None:
        """Stop the music before an announcement or the bridge; the hold loop starts it again after."""
        if self._moh is not None and not self.session.stop(self._moh, self.uuid, 3.0):
            logger.warning("call %s: music did not stop after uuid_break", self.uuid)
        self._moh = None

    def _bridge(self, center: RemoteCenter, skill: str, proxy_id: str) -> None:
        s = self.settings
        try:
            tok = center.issue_token(proxy_id)
        except (ControllerUnavailable, ApiError) as err:
            raise RemoteFailed(f"no token: {err}") from None
        token = tok["token"]
        # continue_on_fail: a failed bridge returns control here (R9) instead of
        # hanging the caller up; hangup_after_bridge: the call ends with the remote.
        try:
            # the remote center's token and proxy id become checked originate variables (never raw text)
            dial = cmds.bridge_dial_string(center.dial_string_for(skill, proxy_id), {
                "sip_h_X-Dialer-Token": token, "dialer_token": token, "dialer_proxy": proxy_id,
                "originate_timeout": int(s.bridge_timeout_s), "ignore_early_media": "true"})
        except cmds.CommandError as err:
            raise RemoteFailed(f"unsafe bridge to {center.name}: {err}") from None
        self.session.execute("set", cmds.set_arg("continue_on_fail", "true"), timeout=s.command_timeout_s)
        self.session.execute("set", cmds.set_arg("hangup_after_bridge", "true"), timeout=s.command_timeout_s)
        self.report.bridge_started_at = time.monotonic()
        logger.info("call %s: bridging to %s for proxy %s", self.uuid, center.name, proxy_id)
        # From here the leg speaks for the proxy: a hang-up during the
        # conversation must not cancel it (the remote acceptor reports the end).
        self._proxy = None

        def on_bridge(_event) -> None:
            self.report.bridge_answered = True

        self.session.register_handle("CHANNEL_BRIDGE", on_bridge)
        try:
            done = self.session.execute("bridge", dial, timeout=MAX_CALL_S)
        except CallerGone:
            if self.report.bridge_answered:
                # The caller ended a bridged conversation (FreeSWITCH sends the
                # hang-up before the bridge's EXECUTE_COMPLETE): a success.
                self.report.outcome = "bridged"
            else:
                self._cancel(center, proxy_id, "caller_hangup")  # no-op remotely once the leg arrived
            raise
        disposition = (done.get("variable_originate_disposition") or "").upper()
        answered = disposition in ("SUCCESS", "ANSWER") or bool(done.get("variable_bridge_hangup_cause")) \
            or bool(done.get("variable_last_bridge_to"))
        if not answered:
            self._proxy = (center, proxy_id)  # still ours: cancelled before the retry
            raise RemoteFailed(f"bridge failed: {disposition or done.get('Application-Response')}")
        self.report.bridge_answered = True

    def _cancel_proxy(self, reason: str) -> None:
        if self._proxy is None:
            return
        center, proxy_id = self._proxy
        self._proxy = None
        self._cancel(center, proxy_id, reason)

    def _cancel(self, center: RemoteCenter, proxy_id: str, reason: str) -> None:
        try:
            snap = center.cancel_proxy(proxy_id, reason)
            if snap.get("state") == "cancelled":
                self.report.cancelled_proxy = True
                logger.info("call %s: proxy %s cancelled (%s)", self.uuid, proxy_id, reason)
        except (ControllerUnavailable, ApiError) as err:
            logger.warning("call %s: could not cancel proxy %s: %s", self.uuid, proxy_id, err)

    # ------------------------------------------------------------ fallback (R9)

    def _fallback(self, action: Remote) -> str:
        s = self.settings
        kind = s.fallback
        if kind == "callback" and s.callback_center in s.centers:
            try:
                s.centers[s.callback_center].request_callback(
                    s.callback_campaign, self.caller, note=f"IVR {action.center}/{action.skill} unavailable")
                self.session.execute("playback", s.callback_prompt, timeout=PLAY_TIMEOUT_S)
                self.report.outcome = "callback"
                return "callback"
            except (ControllerUnavailable, ApiError) as err:
                logger.warning("call %s: callback request failed: %s; voicemail instead", self.uuid, err)
                kind = "voicemail"
        if kind in ("voicemail", "callback"):
            path = os.path.join(s.voicemail_dir, f"{self.uuid}.wav")
            self.session.execute("playback", cmds.playback_arg(s.voicemail_prompt), timeout=PLAY_TIMEOUT_S)
            # mod_dptools: record <path> [<time_limit_secs>] [<silence_thresh>] [<silence_hits>]
            self.report.outcome = "voicemail"
            try:
                self.session.execute("record", cmds.record_arg(path, int(s.voicemail_max_s), 200, 3),
                                     timeout=s.voicemail_max_s + 30)
            except CallerGone:
                # Hanging up is how callers end a message: FreeSWITCH keeps the file.
                logger.info("call %s: caller hung up to end the voicemail %s", self.uuid, path)
                raise
            return "voicemail"
        self.session.execute("playback", cmds.playback_arg(s.sorry_prompt), timeout=PLAY_TIMEOUT_S)
        self.report.outcome = "hangup"
        return "hangup"
