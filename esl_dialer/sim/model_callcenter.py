"""mod_callcenter subset (layer ``model_``): queues, agents, tiers and members, and their events.

Follows src/mod/applications/mod_callcenter/mod_callcenter.c of FreeSWITCH
1.10.12 (``c_callcenter.jsonl`` is the reference for event shapes): the
tables its SQLite database holds, ``cc_agent_update``/``cc_tier_*``, the
dispatch thread (``members_callback``/``agents_callback``: strategies, tier
rules, which agent may be offered a call) is
:mod:`.model_callcenter_dispatch`; the per-offer agent thread
(``outbound_agent_thread_run``) and the ``callcenter`` dialplan application
are :mod:`.model_callcenter_calls`.  The ``callcenter_config`` api is
in :mod:`.cmd_callcenter`.  Times are whole seconds of the simulated clock, as
the module's ``local_epoch_time_now``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .chan_channel import Channel, channel_headers
from .config import CallcenterConfig
from .dialstring import DialStringError, parse_dialstring
from .events import SimEvent
from .plans import OriginateError

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any as SimSwitch

logger = logging.getLogger(__name__)

SUBCLASS = "callcenter::info"
INSTANCE = "single_box"

LOGGED_OUT, AVAILABLE, ON_DEMAND, ON_BREAK = "Logged Out", "Available", "Available (On Demand)", "On Break"
AGENT_STATUSES = (LOGGED_OUT, AVAILABLE, ON_DEMAND, ON_BREAK)
WAITING, RECEIVING, IN_A_QUEUE_CALL, IDLE, RESERVED = "Waiting", "Receiving", "In a queue call", "Idle", "Reserved"
AGENT_STATES = (WAITING, RECEIVING, IN_A_QUEUE_CALL, IDLE, RESERVED)
TIER_NO_ANSWER, TIER_READY, TIER_OFFERING, TIER_ACTIVE, TIER_STANDBY = (
    "No Answer", "Ready", "Offering", "Active Inbound", "Standby")
TIER_STATES = (TIER_NO_ANSWER, TIER_READY, TIER_OFFERING, TIER_ACTIVE, TIER_STANDBY)
M_WAITING, M_TRYING, M_ANSWERED, M_ABANDONED = "Waiting", "Trying", "Answered", "Abandoned"
AGENT_TYPES = ("callback", "uuid-standby")
RING_ALL = ("ring-all", "ring-progressively")

# (Event-Calling-Function, Event-Calling-Line-Number) of each event.  The captured ones are
# FreeSWITCH 1.10.12's own; the others are their source lines shifted like the captured neighbours.
CALLING = {
    "members-count": ("cc_queue_count", 878),
    "agent-add": ("cc_agent_add", 915),
    "agent-get": ("cc_agent_get", 976),
    "agent-status-change": ("cc_agent_update", 1043),
    "agent-state-change": ("cc_agent_update", 1067),
    "agent-contact-change": ("cc_agent_update", 1091),
    "agent-state-if-waiting": ("cc_agent_update", 1160),
    "agent-offering": ("outbound_agent_thread_run", 1717),
    "bridge-agent-start": ("outbound_agent_thread_run", 1939),
    "bridge-agent-end": ("outbound_agent_thread_run", 2066),
    "member-queue-end-terminated": ("outbound_agent_thread_run", 2109),
    "agent-max-no-answer": ("outbound_agent_thread_run", 2170),
    "bridge-agent-fail": ("outbound_agent_thread_run", 2200),
    "member-queue-start": ("callcenter_function", 3113),
    "member-queue-end": ("callcenter_function", 3274),
}


class CC:
    """cc_status_t: what a configuration change returned (the api maps it to a reply text)."""

    SUCCESS = "success"
    AGENT_NOT_FOUND = "agent_not_found"
    QUEUE_NOT_FOUND = "queue_not_found"
    AGENT_ALREADY_EXIST = "agent_already_exist"
    AGENT_INVALID_TYPE = "agent_invalid_type"
    AGENT_INVALID_STATUS = "agent_invalid_status"
    AGENT_INVALID_STATE = "agent_invalid_state"
    TIER_ALREADY_EXIST = "tier_already_exist"
    TIER_NOT_FOUND = "tier_not_found"
    TIER_INVALID_STATE = "tier_invalid_state"
    INVALID_KEY = "invalid_key"


def _canon(value: str, names: Iterable[str]) -> str | None:
    """The chart entry ``value`` names (strcasecmp), or None."""
    low = value.lower()
    return next((n for n in names if n.lower() == low), None)


@dataclass
class Queue:
    """One <queue> of callcenter.conf (fields in ``queue list`` column order)."""

    name: str
    strategy: str = "longest-idle-agent"
    moh_sound: str | None = None
    time_base_score: str = "queue"
    tier_rules_apply: bool = False
    tier_rule_wait_second: int = 0
    tier_rule_wait_multiply_level: bool = False
    tier_rule_no_agent_no_wait: bool = True
    discard_abandoned_after: int = 60
    abandoned_resume_allowed: bool = False
    max_wait_time: int = 0
    max_wait_time_with_no_agent: int = 0
    max_wait_time_with_no_agent_time_reached: int = 5
    record_template: str | None = None
    calls_answered: int = 0
    calls_abandoned: int = 0
    ring_progressively_delay: int = 0
    skip_agents_with_external_calls: bool = True
    agent_no_answer_status: str = ON_BREAK
    last_agent_exist: int = 0
    last_agent_exist_check: int = 0


AGENT_COLUMNS = ("name", "instance_id", "uuid", "type", "contact", "status", "state", "max_no_answer",
                 "wrap_up_time", "reject_delay_time", "busy_delay_time", "no_answer_delay_time",
                 "last_bridge_start", "last_bridge_end", "last_offered_call", "last_status_change",
                 "no_answer_count", "calls_answered", "talk_time", "ready_time", "external_calls_count")


@dataclass
class Agent:
    """A row of the agents table (fields in ``agent list`` column order)."""

    name: str
    instance_id: str = INSTANCE
    uuid: str = ""
    type: str = "callback"
    contact: str = ""
    status: str = LOGGED_OUT
    state: str = WAITING
    max_no_answer: int = 0
    wrap_up_time: int = 0
    reject_delay_time: int = 0
    busy_delay_time: int = 0
    no_answer_delay_time: int = 0
    last_bridge_start: int = 0
    last_bridge_end: int = 0
    last_offered_call: int = 0
    last_status_change: int = 0
    no_answer_count: int = 0
    calls_answered: int = 0
    talk_time: int = 0
    ready_time: int = 0
    external_calls_count: int = 0

    def row(self) -> list[str]:
        return [str(getattr(self, c)) for c in AGENT_COLUMNS]


@dataclass
class Tier:
    """A row of the tiers table."""

    queue: str
    agent: str
    state: str = TIER_READY
    level: int = 1
    position: int = 1


MEMBER_COLUMNS = ("queue", "instance_id", "uuid", "session_uuid", "cid_number", "cid_name", "system_epoch",
                  "joined_epoch", "rejoined_epoch", "bridge_epoch", "abandoned_epoch", "base_score", "skill_score",
                  "serving_agent", "serving_system", "state")


@dataclass(eq=False)
class Member:
    """A row of the members table plus what callcenter_function keeps on its stack."""

    queue: str
    uuid: str
    session_uuid: str
    cid_number: str
    cid_name: str
    system_epoch: int
    joined_epoch: int
    base_score: int = 0
    skill_score: int = 0
    instance_id: str = INSTANCE
    rejoined_epoch: int = 0
    bridge_epoch: int = 0
    abandoned_epoch: int = 0
    serving_agent: str = ""
    serving_system: str = ""
    state: str = M_WAITING
    cancel_reason: str = "NONE"  # set by the member thread (TIMEOUT, NO_AGENT_TIMEOUT)
    agent_found: bool = False  # set by the agent thread before it bridges
    running: bool = True
    connecting: int = 0  # CC_APP_AGENT_CONNECTING: agent threads originating for this member
    offers: set = field(default_factory=set)  # greenlets of agent threads working for this member

    def row(self, now: int) -> list[str]:
        return [str(getattr(self, c)) for c in MEMBER_COLUMNS] + [str(self.score(now))]

    def score(self, now: int) -> int:
        return now - self.joined_epoch + self.base_score + self.skill_score


@dataclass
class Offer:
    """struct call_helper: one agent thread's copy of the member and agent rows."""

    member: Member
    member_uuid: str
    member_session_uuid: str
    member_cid_name: str
    member_cid_number: str
    member_joined_epoch: int
    queue: str
    strategy: str
    agent: str
    agent_system: str
    agent_status: str
    agent_type: str
    agent_uuid: str
    contact: str
    record_template: str | None
    no_answer_count: int
    max_no_answer: int
    reject_delay_time: int
    busy_delay_time: int
    no_answer_delay_time: int
    agent_no_answer_status: str


class CallCenter:
    """The module's state and threads for one simulated switch (``switch.callcenter``)."""

    def __init__(self, switch: "SimSwitch", config: CallcenterConfig | None = None) -> None:
        self.switch = switch
        config = config or getattr(switch.config, "callcenter", None) or CallcenterConfig()
        # callcenter.conf's queues; "" stands for an unset param
        self.queue_config: dict[str, Mapping[str, Any]] = {
            name: {k: (None if v == "" else v) for k, v in asdict(q).items()} for name, q in config.queues.items()}
        self.agent_originate_timeout = config.agent_originate_timeout
        self.queues: dict[str, Queue] = {}
        self.agents: dict[str, Agent] = {}
        self.tiers: list[Tier] = []
        self.members: dict[str, Member] = {}
        self.app: Any = None  # the calls (:mod:`.model_callcenter_calls`) attach themselves here
        self.dispatcher: Any = None  # and so does the dispatch thread (:mod:`.model_callcenter_dispatch`)
        for name in self.queue_config:  # load_config: every configured queue is loaded at start
            self.load_queue(name)
        for spec in config.agents:  # load_agent: add, then set what is given
            if self.agent_add(spec.name, spec.type) not in (CC.SUCCESS, CC.AGENT_ALREADY_EXIST):
                raise ValueError(f"callcenter agent {spec.name}: invalid type {spec.type!r}")
            for key in ("contact", "status", "wrap_up_time", "max_no_answer", "reject_delay_time",
                        "busy_delay_time", "no_answer_delay_time"):
                value = getattr(spec, key)
                if value not in ("", 0) and self.agent_update(key, str(value), spec.name) != CC.SUCCESS:
                    raise ValueError(f"callcenter agent {spec.name}: invalid {key} {value!r}")
        for tier in config.tiers:  # load_tier
            if self.tier_add(tier.queue, tier.agent, TIER_READY, tier.level, tier.position) != CC.SUCCESS:
                raise ValueError(f"callcenter tier {tier.queue} / {tier.agent}: unknown queue or agent")

    # -- clock and events -------------------------------------------------------------
    def now(self) -> int:
        return int(self.switch.clock.now())

    def fire(self, action: str, headers: Iterable[tuple[str, str | None]], ch: Channel | None = None,
             calling: str | None = None) -> SimEvent | None:
        """A CUSTOM callcenter::info event; with ``ch`` the channel's data comes first."""
        sw = self.switch
        if not any(listener.may_want("CUSTOM") for listener in sw.listeners):
            sw.headers.sequence += 1
            return None
        func, line = CALLING[calling or action]
        base = []
        for k, v in sw.headers.base("CUSTOM", SUBCLASS):
            if k == "Event-Calling-File":
                v = "mod_callcenter.c"
            elif k == "Event-Calling-Function":
                v = func
            elif k == "Event-Calling-Line-Number":
                v = str(line)
            if k not in ("Event-Name", "Event-Subclass"):
                base.append((k, v))
        out = [("Event-Subclass", SUBCLASS), ("Event-Name", "CUSTOM")] + base
        if ch is not None:
            other = sw.find(ch.other_leg) if ch.other_leg else None
            out += channel_headers(ch, other=other, state_number=None if ch.alive else 10)
        out += [(k, v) for k, v in headers if v is not None]  # switch_event_add_header_string skips NULL
        event = SimEvent("CUSTOM", out, None, SUBCLASS, ch.uuid if ch is not None else None)
        for listener in list(sw.listeners):
            listener.offer(event)
        return event

    def queue_count(self, queue: str) -> int:
        """cc_queue_count: members Waiting or Trying, announced as members-count."""
        if queue.startswith("*"):
            count, selection = sum(1 for m in self.members.values() if m.state in (M_WAITING, M_TRYING)), "All-Queues"
        else:
            count = sum(1 for m in self.members.values() if m.queue == queue and m.state in (M_WAITING, M_TRYING))
            selection = "Single-Queue"
        self.fire("members-count", [("CC-Queue", queue), ("CC-Action", "members-count"), ("CC-Count", str(count)),
                                    ("CC-Selection", selection)])
        return count

    # -- queues -----------------------------------------------------------------------
    def load_queue(self, name: str) -> Queue | None:
        spec = self.queue_config.get(name)
        if spec is None:
            return None
        queue = Queue(name=name, **{k: v for k, v in spec.items() if k in Queue.__dataclass_fields__ and k != "name"})
        if _canon(queue.agent_no_answer_status, AGENT_STATUSES) is None:
            queue.agent_no_answer_status = ON_BREAK
        self.queues[name] = queue
        return queue

    def configure_queue(self, name: str, **params: Any) -> Queue:
        """Add or replace a <queue> in callcenter.conf and load it (what ``queue reload`` would read)."""
        unknown = set(params) - set(Queue.__dataclass_fields__) - {"name"}
        if unknown:
            raise ValueError(f"unknown queue parameters {sorted(unknown)}")
        self.queue_config[name] = dict(params)
        queue = self.load_queue(name)
        assert queue is not None
        return queue

    def get_queue(self, name: str) -> Queue | None:
        return self.queues.get(name) or self.load_queue(name)

    def unload_queue(self, name: str) -> None:
        self.queues.pop(name, None)

    # -- agents -----------------------------------------------------------------------
    def agent_add(self, name: str, type_: str) -> str:
        if _canon(type_, AGENT_TYPES) is None:
            return CC.AGENT_INVALID_TYPE
        if name in self.agents:
            return CC.AGENT_ALREADY_EXIST
        self.agents[name] = Agent(name=name, type=type_)
        self.fire("agent-add", [("CC-Agent", name), ("CC-Agent-Type", type_), ("CC-Action", "agent-add")])
        return CC.SUCCESS

    def agent_del(self, name: str) -> str:
        self.agents.pop(name, None)
        self.tiers = [t for t in self.tiers if t.agent != name]
        return CC.SUCCESS

    def agent_get(self, key: str, name: str) -> tuple[str, str]:
        agent = self.agents.get(name)
        if agent is None:
            return CC.AGENT_NOT_FOUND, ""
        if key.lower() not in ("status", "state", "uuid"):
            return CC.INVALID_KEY, ""
        value = str(getattr(agent, key.lower()))
        header = "CC-Agent-UUID" if key.lower() == "uuid" else f"CC-Agent-{key[0].upper()}{key[1:]}"
        self.fire("agent-get", [("CC-Agent", name), ("CC-Action", f"agent-{key}-get"), (header, value)])
        return CC.SUCCESS, value

    def agent_update(self, key: str, value: str, name: str) -> str:
        """cc_agent_update: one key of an agent, with the events FreeSWITCH fires."""
        agent = self.agents.get(name)
        if agent is None:
            return CC.AGENT_NOT_FOUND
        k = key.lower()
        now = self.now()
        if k == "status":
            canon = _canon(value, AGENT_STATUSES)
            if canon is None:
                return CC.AGENT_INVALID_STATUS
            if canon == AVAILABLE:  # reset the counters only when it changes
                if agent.status != value:
                    agent.status, agent.last_status_change = value, now
                    agent.talk_time = agent.calls_answered = agent.no_answer_count = 0
            else:
                agent.status, agent.last_status_change = value, now
                serving = next((m for m in self.members.values()
                                if m.serving_agent == name and m.serving_system == INSTANCE
                                and m.state != M_ANSWERED), None)
                if serving is not None:  # stop a callback that is ringing
                    self.hangup_matching(serving.uuid, "ORIGINATOR_CANCEL")
            self.fire("agent-status-change", [("CC-Agent", name), ("CC-Action", "agent-status-change"),
                                              ("CC-Agent-Status", value)])
        elif k == "state":
            canon = _canon(value, AGENT_STATES)
            if canon is None:
                return CC.AGENT_INVALID_STATE
            agent.state = value
            if canon == RECEIVING:
                agent.last_offered_call = now
            self.fire("agent-state-change", [("CC-Agent", name), ("CC-Action", "agent-state-change"),
                                             ("CC-Agent-State", value)])
        elif k == "state_if_waiting":
            if _canon(value, AGENT_STATES) is None:
                return CC.AGENT_INVALID_STATE
            if agent.state != WAITING or agent.status not in (AVAILABLE, ON_DEMAND):
                return CC.AGENT_NOT_FOUND
            agent.state = value
            self.fire("agent-state-change", [("CC-Agent", name), ("CC-Action", "agent-state-change"),
                                             ("CC-Agent-State", value)], calling="agent-state-if-waiting")
        elif k == "uuid":
            agent.uuid, agent.instance_id = value, INSTANCE
        elif k == "contact":
            agent.contact, agent.instance_id = value, INSTANCE
            self.fire("agent-contact-change", [("CC-Agent", name), ("CC-Action", "agent-contact-change"),
                                               ("CC-Agent-Contact", value)])
        elif k in ("ready_time", "busy_delay_time", "reject_delay_time", "no_answer_delay_time",
                   "max_no_answer", "wrap_up_time"):
            setattr(agent, k, _atoi(value))
            agent.instance_id = INSTANCE
        elif k == "type":
            if _canon(value, AGENT_TYPES) is None:
                return CC.AGENT_INVALID_TYPE
            agent.type = value
        else:
            return CC.INVALID_KEY
        self.kick()
        return CC.SUCCESS

    # -- tiers ------------------------------------------------------------------------
    def tier(self, queue: str, agent: str) -> Tier | None:
        return next((t for t in self.tiers if t.queue == queue and t.agent == agent), None)

    def tier_add(self, queue: str, agent: str, state: str = TIER_READY, level: int = 1, position: int = 1) -> str:
        if self.get_queue(queue) is None:
            return CC.QUEUE_NOT_FOUND
        if _canon(state, TIER_STATES) is None:
            return CC.TIER_INVALID_STATE
        if agent not in self.agents:
            return CC.AGENT_NOT_FOUND
        if self.tier(queue, agent) is not None:
            return CC.TIER_ALREADY_EXIST
        self.tiers.append(Tier(queue, agent, state, level, position))
        self.kick()
        return CC.SUCCESS

    def tier_update(self, key: str, value: str, queue: str, agent: str) -> str:
        tier = self.tier(queue, agent)
        if tier is None:
            return CC.TIER_NOT_FOUND
        if agent not in self.agents:
            return CC.AGENT_NOT_FOUND
        if self.get_queue(queue) is None:
            return CC.QUEUE_NOT_FOUND
        k = key.lower()
        if k == "state":
            if _canon(value, TIER_STATES) is None:
                return CC.TIER_INVALID_STATE
            tier.state = value
        elif k in ("level", "position"):
            setattr(tier, k, _atoi(value))
        else:
            return CC.INVALID_KEY
        self.kick()
        return CC.SUCCESS

    def tier_del(self, queue: str, agent: str) -> str:
        self.tiers = [t for t in self.tiers if not (t.queue == queue and t.agent == agent)]
        return CC.SUCCESS

    def _set_tiers_after(self, agent: str, queue: str, state: str) -> None:
        """The end of an agent thread: its tier back to ``state``, its Standby tiers elsewhere Ready."""
        for t in self.tiers:
            if t.agent != agent:
                continue
            if t.queue == queue and t.state in (TIER_ACTIVE, TIER_STANDBY, TIER_OFFERING):
                t.state = state
            elif t.queue != queue and t.state == TIER_STANDBY:
                t.state = TIER_READY

    # -- channels ---------------------------------------------------------------------
    def hangup_matching(self, member_uuid: str, cause: str) -> None:
        """switch_core_session_hupall_matching_var("cc_member_pre_answer_uuid", member_uuid, cause)."""
        for ch in list(self.switch.channels.values()):
            if ch.alive and ch.variables.get("cc_member_pre_answer_uuid") == member_uuid:
                self.switch.hangup(ch, cause)

    # -- the dispatch thread (:mod:`.model_callcenter_dispatch`) -----------------------
    def kick(self) -> None:
        """Something changed: let the dispatcher look at the members now (it also polls)."""
        if self.dispatcher is not None:
            self.dispatcher.kick()

    # -- the agent leg ----------------------------------------------------------------
    def originate_agent(self, offer: Offer, member_ch: Channel, variables: Mapping[str, str]) -> Channel:
        """switch_ivr_originate of the agent's contact with the module's ovars (dial string wins)."""
        try:
            ds = parse_dialstring(offer.contact)
        except DialStringError as err:
            raise OriginateError("INVALID_NUMBER_FORMAT") from err
        for k, v in variables.items():
            ds.global_vars.setdefault(k, v)
        if "leg_timeout" not in ds.global_vars and not any("leg_timeout" in leg.variables for leg in ds.legs):
            ds.global_vars.setdefault("originate_timeout", str(self.agent_originate_timeout))
        ch = self.switch.originate_legs(ds)
        self.switch.flip_cid(ch)
        return ch


def _atoi(value: Any) -> int:
    """C atoi: the leading integer, 0 when there is none."""
    text = str(value).strip()
    digits = ""
    for i, c in enumerate(text):
        if c.isdigit() or (i == 0 and c in "+-"):
            digits += c
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
