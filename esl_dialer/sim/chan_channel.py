"""Channel state and FreeSWITCH-shaped event headers.

A :class:`Channel` holds what FreeSWITCH keeps in ``switch_channel_t`` and its
caller profile; :func:`channel_headers` renders them in the order
``switch_channel_event_set_data`` does (basic data, caller profile, other
leg, ``variable_*``), checked against the captures from FreeSWITCH 1.10.12.
No gevent here; the switch drives channels.
"""
from __future__ import annotations

import enum
import re
import time
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class ChannelState(enum.Enum):
    """switch_channel_state_t, with FreeSWITCH's numbering."""

    CS_NEW = 0
    CS_INIT = 1
    CS_ROUTING = 2
    CS_SOFT_EXECUTE = 3
    CS_EXECUTE = 4
    CS_EXCHANGE_MEDIA = 5
    CS_PARK = 6
    CS_CONSUME_MEDIA = 7
    CS_HIBERNATE = 8
    CS_RESET = 9
    CS_HANGUP = 10
    CS_REPORTING = 11
    CS_DESTROY = 12
    CS_NONE = 13


class CallState(enum.Enum):
    """switch_channel_callstate_t names as sent in Channel-Call-State."""

    DOWN = "DOWN"
    RINGING = "RINGING"
    EARLY = "EARLY"
    ACTIVE = "ACTIVE"
    HANGUP = "HANGUP"


# switch_channel_callstate_t numbers (Channel-Call-State-Number of CHANNEL_CALLSTATE)
CALLSTATE_NUMBER = {"DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5, "RING_WAIT": 6,
                    "HANGUP": 7, "UNHELD": 8}


# Q.850 codes for the causes a dialer meets (switch_channel.c CAUSE_CHART).
Q850 = {
    "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "NORMAL_CLEARING": 16, "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22, "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31, "NORMAL_CIRCUIT_CONGESTION": 34, "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41, "SWITCH_CONGESTION": 42, "REQUESTED_CHAN_UNAVAIL": 44,
    "BEARERCAPABILITY_NOTAUTH": 57, "FACILITY_NOT_IMPLEMENTED": 69, "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81, "INCOMPATIBLE_DESTINATION": 88, "RECOVERY_ON_TIMER_EXPIRE": 102,
    "INTERWORKING": 127, "ORIGINATOR_CANCEL": 487, "ALLOTTED_TIMEOUT": 602, "USER_NOT_REGISTERED": 606,
    "PROGRESS_TIMEOUT": 607, "MEDIA_TIMEOUT": 604, "LOSE_RACE": 502, "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600, "ATTENDED_TRANSFER": 601, "CHAN_NOT_IMPLEMENTED": 66, "NONE": 0,
}


_BAD_VAR = re.compile(r"[\s:]")


def new_uuid() -> str:
    return str(uuid_mod.uuid4())


class SimClock:
    """Simulated wall clock: real time since start, divided by ``time_scale``.

    With time_scale 0.1 a call that talks 30 simulated seconds takes 3 real
    seconds, and its billsec says 30.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) / self.time_scale

    def real(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) * self.time_scale


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _gmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _us(ts: float | None) -> str:
    return str(int(ts * 1_000_000)) if ts else "0"


@dataclass
class Playback:
    file: str
    leg: str
    started: float
    seconds: float
    status: str = "playing"


@dataclass(eq=False)
class Channel:
    """One call leg.  Mutable: owned and changed only by the switch."""

    uuid: str
    name: str
    direction: str  # "inbound" | "outbound"
    destination: str
    caller_id_number: str = "0000000000"
    caller_id_name: str = ""  # empty: the Caller-ID-Name header is left out, as FreeSWITCH does
    context: str = "default"
    source: str = "mod_sofia"
    created: float = 0.0
    session_id: int = 0
    state: ChannelState = ChannelState.CS_NEW
    call_state: CallState = CallState.DOWN
    answer_state: str = "ringing"
    hit_dialplan: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    progress_at: float | None = None
    progress_media_at: float | None = None
    answered_at: float | None = None
    bridged_at: float | None = None
    media_bridged_at: float | None = None  # when the latest bridge completed (sim clock): media delay
    hangup_at: float | None = None
    hangup_cause: str | None = None
    bridged_to: str | None = None
    other_leg: str | None = None  # Other-Leg-* (originator/originatee)
    other_type: str | None = None
    loopback_peer: str | None = None
    controlled: bool = False  # an outbound socket or park keeps it alive when the dialplan ends
    current_app: str | None = None
    current_app_data: str | None = None
    last_app: str | None = None  # the newest application started (switch's app log): last_app at hang-up
    last_arg: str = ""
    bridge_pending: bool = False  # uuid_bridge replied, CHANNEL_BRIDGE not yet sent: media is moving
    bridged_by: str | None = None  # "uuid_bridge" | "bridge": how the current bridge was made
    playbacks: list[Playback] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)  # digits pressed on this leg
    pending_dtmf: str = ""  # digits the simulated party will press when prompted
    dtmf_buffer: str = ""  # digits already received (uuid_send_dtmf) and not yet read
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (sim time, kind, detail)
    outcome: str | None = None  # the call-model outcome applied to this leg
    callee_id_name: str = "Outbound Call"
    callee_id_number: str | None = None  # None: the destination number
    orig_caller_id_number: str | None = None  # None: caller_id_number
    transfer_source: str | None = None
    _profile_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def alive(self) -> bool:
        return self.hangup_at is None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def note(self, now: float, kind: str, detail: str = "") -> None:
        self.log.append((now, kind, detail))

    def flip_cid(self) -> None:
        """switch_ivr_originate flips caller and callee on the originated leg once it is up:
        afterwards Caller-Caller-ID-Number is the number dialled (channel_cid_flipped=yes)."""
        if self.variables.get("channel_cid_flipped") == "yes":
            return
        pre = self.caller_id_number
        self.orig_caller_id_number = self.orig_caller_id_number or pre
        self.variables["pre_transfer_caller_id_number"] = pre
        self.variables["channel_cid_flipped"] = "yes"
        self.caller_id_name = self.callee_id_name or self.caller_id_name
        self.caller_id_number = self.callee_id_number if self.callee_id_number is not None else self.destination
        self.callee_id_number = pre
        self.callee_id_name = ""

    def set_var(self, name: str, value: str | None) -> None:
        """Set (None: unset) a channel variable.  Names that could break event framing
        (line breaks, ':' or blanks) are refused, as events carry them as header names."""
        if not name or _BAD_VAR.search(name):
            raise ValueError(f"invalid channel variable name {name!r}")
        if value is None:
            self.variables.pop(name, None)
        else:
            self.variables[name] = str(value)

    # -- billing variables set at hang-up (switch_core_state_machine.c / switch_channel.c)
    def set_hangup_variables(self) -> None:
        end = self.hangup_at or self.created
        created = self.created
        answered = self.answered_at
        cause = self.hangup_cause or "NORMAL_CLEARING"
        v = self.variables
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(Q850.get(cause, 0))
        v.setdefault("digits_dialed", "none")
        v["start_stamp"] = _local(created)
        v["profile_start_stamp"] = _local(created)
        if answered:
            v["answer_stamp"] = _local(answered)
        if self.bridged_at:
            v["bridge_stamp"] = _local(self.bridged_at)
        v["end_stamp"] = _local(end)
        for prefix, ts in (("start", created), ("profile_start", created), ("answer", answered),
                           ("bridge", self.bridged_at), ("last_hold", None), ("resurrect", None),
                           ("progress", self.progress_at), ("progress_media", self.progress_media_at),
                           ("end", end)):
            v[f"{prefix}_epoch"] = str(int(ts)) if ts else "0"
            v[f"{prefix}_uepoch"] = _us(ts)
        v["hold_accum_seconds"] = v["hold_accum_usec"] = v["hold_accum_ms"] = "0"
        if self.last_app or self.current_app:
            # the app log's newest entry: the last application before a uuid_bridge, never uuid_bridge;
            # last_arg only when that app had an argument (e_timing: none after park)
            v["last_app"] = self.last_app or self.current_app or ""
            arg = self.last_arg if self.last_app else (self.current_app_data or "")
            if arg:
                v["last_arg"] = arg
        v["caller_id"] = self.caller_id_number
        dur = end - created
        bill = (end - answered) if answered else 0.0
        prog = (self.progress_at - created) if self.progress_at else 0.0
        ans = (answered - created) if answered else 0.0
        pm = (self.progress_media_at - created) if self.progress_media_at else 0.0
        for suffix, scale in (("sec", 1), ("msec", 1000), ("usec", 1_000_000)):
            def fmt(x: float) -> str:
                return str(int(round(x * scale)) if scale > 1 else int(x + 0.5))
            v["duration" if suffix == "sec" else ("mduration" if suffix == "msec" else "uduration")] = fmt(dur)
            v[f"bill{suffix}"] = fmt(bill)
            v[f"progress{suffix}"] = fmt(prog)
            v[f"answer{suffix}"] = fmt(ans)
            v[f"wait{suffix}"] = fmt(ans)
            v[f"progress_media{suffix}"] = fmt(pm)
            v[f"flow_bill{suffix}"] = fmt(dur)


BASE_CALLING = {
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", "768"),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3568"),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered", "3710"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3846"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2944"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2967"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", "1213"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3445"),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", "943"),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2408"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1676"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1646"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2020"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "677"),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", "1240"),
    "RECORD_STOP": ("switch_ivr_async.c", "record_callback", "1320"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1572"),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", "83"),
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", "2021"),
    "API": ("switch_loadable_module.c", "switch_api_execute", "2954"),
    "RELOADXML": ("switch_xml.c", "switch_xml_open_root", "2385"),
    "CHANNEL_HOLD": ("switch_ivr.c", "switch_ivr_hold", "1558"),
    "CODEC": ("switch_core_codec.c", "switch_core_session_set_read_codec", "279"),
    "CHANNEL_UUID": ("switch_core_session.c", "switch_core_session_set_uuid", "2051"),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", "632"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "301"),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", "3277"),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", "804"),
}


class HeaderFactory:
    """Builds the global part of every event (Event-Name ... Event-Sequence)."""

    def __init__(self, core_uuid: str, hostname: str, ipv4: str, clock: SimClock) -> None:
        self.core_uuid = core_uuid
        self.hostname = hostname
        self.ipv4 = ipv4
        self.clock = clock
        self.sequence = 0
        self._date_second = -1
        self._date_cache = ("", "")

    def _dates(self, now: float) -> tuple[str, str]:
        second = int(now)
        if second != self._date_second:  # strftime twice per event is measurable: once a second
            self._date_second = second
            self._date_cache = (_local(now), _gmt(now))
        return self._date_cache

    def base(self, event_name: str, subclass: str | None = None) -> list[tuple[str, str]]:
        self.sequence += 1
        now = self.clock.now()
        local, gmt = self._dates(now)
        calling = BASE_CALLING.get(event_name, ("switch_event.c", "switch_event_fire_detailed", "2000"))
        headers = [("Event-Name", event_name)]
        if subclass:
            headers.append(("Event-Subclass", subclass))
        headers += [
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", local),
            ("Event-Date-GMT", gmt),
            ("Event-Date-Timestamp", _us(now)),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", calling[2]),
            ("Event-Sequence", str(self.sequence)),
        ]
        return headers


def _profile_key(prefix: str, ch: Channel) -> tuple:
    return (prefix, ch.name, ch.direction, ch.caller_id_name, ch.caller_id_number, ch.destination, ch.context,
            ch.answered_at, ch.progress_at, ch.progress_media_at, ch.hangup_at, ch.bridged_at,
            ch.callee_id_name, ch.callee_id_number, ch.orig_caller_id_number, ch.transfer_source)


def _profile(prefix: str, ch: Channel) -> list[tuple[str, str]]:
    """switch_caller_profile_event_set_data(), cached per channel until a field changes."""
    key = _profile_key(prefix, ch)
    cached = ch._profile_cache.get(prefix)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = _build_profile(prefix, ch)
    ch._profile_cache[prefix] = (key, h)
    return h


def _build_profile(prefix: str, ch: Channel) -> list[tuple[str, str]]:
    h = [
        (f"{prefix}-Direction", ch.direction),
        (f"{prefix}-Logical-Direction", ch.direction),
        (f"{prefix}-Dialplan", "xml"),
    ]
    if ch.caller_id_name:  # switch_caller_profile_event_set_data skips empty fields
        h.append((f"{prefix}-Caller-ID-Name", ch.caller_id_name))
    orig = ch.orig_caller_id_number or ch.caller_id_number
    h += [
        (f"{prefix}-Caller-ID-Number", ch.caller_id_number),
        (f"{prefix}-Orig-Caller-ID-Number", orig),
    ]
    if ch.callee_id_name:
        h.append((f"{prefix}-Callee-ID-Name", ch.callee_id_name))
    h += [
        (f"{prefix}-Callee-ID-Number", ch.callee_id_number if ch.callee_id_number is not None else ch.destination),
        (f"{prefix}-ANI", orig),
        (f"{prefix}-Destination-Number", ch.destination),
        (f"{prefix}-Unique-ID", ch.uuid),
        (f"{prefix}-Source", ch.source),
    ]
    if ch.transfer_source:
        h.append((f"{prefix}-Transfer-Source", ch.transfer_source))
    h += [
        (f"{prefix}-Context", ch.context),
        (f"{prefix}-Channel-Name", ch.name),
        (f"{prefix}-Profile-Index", "1"),
        (f"{prefix}-Profile-Created-Time", _us(ch.created)),
        (f"{prefix}-Channel-Created-Time", _us(ch.created)),
        (f"{prefix}-Channel-Answered-Time", _us(ch.answered_at)),
        (f"{prefix}-Channel-Progress-Time", _us(ch.progress_at)),
        (f"{prefix}-Channel-Progress-Media-Time", _us(ch.progress_media_at)),
        (f"{prefix}-Channel-Hangup-Time", _us(ch.hangup_at)),
        (f"{prefix}-Channel-Transfer-Time", "0"),
        (f"{prefix}-Channel-Resurrect-Time", "0"),
        (f"{prefix}-Channel-Bridged-Time", _us(ch.bridged_at)),
        (f"{prefix}-Channel-Last-Hold", "0"),
        (f"{prefix}-Channel-Hold-Accum", "0"),
        (f"{prefix}-Screen-Bit", "true"),
        (f"{prefix}-Privacy-Hide-Name", "false"),
        (f"{prefix}-Privacy-Hide-Number", "false"),
    ]
    return h


_NOT_IN_OTHER_LEG = frozenset({"Other-Leg-Profile-Index", "Other-Leg-Transfer-Source"})


def channel_headers(
    ch: Channel,
    *,
    other: Channel | None = None,
    variables: bool = True,
    state_name: str | None = None,
    state_number: int | None = None,
) -> list[tuple[str, str]]:
    """switch_channel_event_set_data(): basic data, caller profile, other leg, variables."""
    h = _basic(ch, state_name, state_number)
    h += _profile("Caller", ch)
    if other is not None and ch.other_type:
        h.append(("Other-Type", ch.other_type))
        h += [(k, v) for k, v in _profile("Other-Leg", other) if k not in _NOT_IN_OTHER_LEG]
    if variables:
        h += [(f"variable_{k}", v) for k, v in ch.variables.items()]
    return h


def _basic(ch: Channel, state_name: str | None, state_number: int | None) -> list[tuple[str, str]]:
    """switch_channel_event_set_basic_data() plus the codec headers."""
    state = state_name or ch.state.name
    h: list[tuple[str, str]] = [
        ("Channel-State", state),
        ("Channel-Call-State", ch.call_state.value),
        ("Channel-State-Number", str(state_number if state_number is not None else ch.state.value)),
        ("Channel-Name", ch.name),
        ("Unique-ID", ch.uuid),
        ("Call-Direction", ch.direction),
        ("Presence-Call-Direction", ch.direction),
        ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"),
        ("Channel-Call-UUID", ch.variables.get("call_uuid", ch.uuid)),
        ("Answer-State", ch.answer_state),
    ]
    if ch.hangup_cause:
        h.append(("Hangup-Cause", ch.hangup_cause))
    h += _LOOPBACK_CODEC if ch.source == "mod_loopback" else _PCMU_CODEC
    return h


def _codec_headers(name: str, bits: str) -> list[tuple[str, str]]:
    return [("Channel-Read-Codec-Name", name), ("Channel-Read-Codec-Rate", "8000"),
            ("Channel-Read-Codec-Bit-Rate", bits), ("Channel-Write-Codec-Name", name),
            ("Channel-Write-Codec-Rate", "8000"), ("Channel-Write-Codec-Bit-Rate", bits)]


_PCMU_CODEC = _codec_headers("PCMU", "64000")
_LOOPBACK_CODEC = _codec_headers("L16", "128000")  # mod_loopback's legs (every capture)


def codec_headers(ch: Channel, uuid: str, write: bool) -> list[tuple[str, str]]:
    """The CODEC event's body (switch_core_session_set_read_codec / _set_write_codec at channel
    creation): basic data of a channel in CS_NONE under its first ``uuid``, no profile, and the
    odd duplicate names FreeSWITCH 1.10.12 adds (e_timing)."""
    codec, rate, bits = ("L16", "8000", "128000") if ch.source == "mod_loopback" else ("PCMU", "8000", "64000")
    h = [("Channel-State", "CS_NONE"), ("Channel-Call-State", ch.call_state.value), ("Channel-State-Number", "0"),
         ("Channel-Name", ch.name), ("Unique-ID", uuid), ("Call-Direction", ch.direction),
         ("Presence-Call-Direction", ch.direction),
         ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"), ("Channel-Call-UUID", uuid),
         ("Answer-State", ch.answer_state),
         ("Channel-Read-Codec-Name", codec), ("Channel-Read-Codec-Rate", rate), ("Channel-Read-Codec-Bit-Rate", bits)]
    if not write:
        return h + [("channel-read-codec-name", codec), ("channel-read-codec-rate", rate),
                    ("channel-read-codec-bit-rate", bits)]
    return h + [("Channel-Write-Codec-Name", codec), ("Channel-Write-Codec-Rate", rate),
                ("Channel-Write-Codec-Bit-Rate", bits), ("Channel-Write-codec-bit-rate", bits)]


def channel_data_headers(ch: Channel, other: Channel | None = None) -> list[tuple[str, str]]:
    """The ``connect`` reply of an outbound socket: caller profile as ``Channel-*`` first."""
    return _profile("Channel", ch) + channel_headers(ch, other=other)


def show_row(ch: Channel, hostname: str) -> dict[str, Any]:
    """One row of ``show channels`` (the columns of the channels table in core.db)."""
    return {
        "uuid": ch.uuid,
        "direction": ch.direction,
        "created": _local(ch.created),
        "created_epoch": str(int(ch.created)),
        "name": ch.name,
        "state": ch.state.name,
        "cid_name": ch.caller_id_name,
        "cid_num": ch.caller_id_number,
        "ip_addr": "",
        "dest": ch.destination,
        "application": ch.current_app or "",
        "application_data": ch.current_app_data or "",
        "dialplan": "xml",
        "context": ch.context,
        "read_codec": "PCMU",
        "read_rate": "8000",
        "read_bit_rate": "64000",
        "write_codec": "PCMU",
        "write_rate": "8000",
        "write_bit_rate": "64000",
        "secure": "",
        "hostname": hostname,
        "presence_id": "",
        "presence_data": "",
        "accountcode": "",
        "callstate": ch.call_state.value,
        "callee_name": "",
        "callee_num": "",
        "callee_direction": "",
        "call_uuid": ch.variables.get("call_uuid", ch.uuid),
        "sent_callee_name": "",
        "sent_callee_num": "",
        "initial_cid_name": ch.caller_id_name,
        "initial_cid_num": ch.caller_id_number,
        "initial_ip_addr": "",
        "initial_dest": ch.destination,
        "initial_dialplan": "xml",
        "initial_context": ch.context,
    }
