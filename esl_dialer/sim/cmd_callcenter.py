"""``api callcenter_config`` (layer ``cmd_``): mod_callcenter's configuration command.

Syntax, reply texts and list formats are those of ``cc_config_api_function``
in mod_callcenter.c (FreeSWITCH 1.10): ``+OK\\n`` or ``-ERR ...!\\n``, lists as
``|``-separated rows under a header line (no header when there is no row)
followed by ``+OK\\n``, counts as a number and a newline, ``agent get`` as the
bare value.  The state it reads and changes is
:class:`~esl_dialer.sim.model_callcenter.CallCenter`.
"""
from __future__ import annotations

from typing import Any, Callable

from .model_callcenter import AGENT_COLUMNS, CC, CallCenter, MEMBER_COLUMNS, _atoi
from .model_callcenter_calls import attach_callcenter

USAGE = (
    "callcenter_config <target> <args>,\n"
    "\tcallcenter_config agent add [name] [type] | \n"
    "\tcallcenter_config agent del [name] | \n"
    "\tcallcenter_config agent reload [name] | \n"
    "\tcallcenter_config agent set status [agent_name] [status] | \n"
    "\tcallcenter_config agent set state [agent_name] [state] | \n"
    "\tcallcenter_config agent set contact [agent_name] [contact] | \n"
    "\tcallcenter_config agent set ready_time [agent_name] [wait till epoch] | \n"
    "\tcallcenter_config agent set reject_delay_time [agent_name] [wait second] | \n"
    "\tcallcenter_config agent set busy_delay_time [agent_name] [wait second] | \n"
    "\tcallcenter_config agent set no_answer_delay_time [agent_name] [wait second] | \n"
    "\tcallcenter_config agent get status [agent_name] | \n"
    "\tcallcenter_config agent get state [agent_name] | \n"
    "\tcallcenter_config agent get uuid [agent_name] | \n"
    "\tcallcenter_config agent list [[agent_name]] | \n"
    "\tcallcenter_config tier add [queue_name] [agent_name] [[level]] [[position]] | \n"
    "\tcallcenter_config tier set state [queue_name] [agent_name] [state] | \n"
    "\tcallcenter_config tier set level [queue_name] [agent_name] [level] | \n"
    "\tcallcenter_config tier set position [queue_name] [agent_name] [position] | \n"
    "\tcallcenter_config tier del [queue_name] [agent_name] | \n"
    "\tcallcenter_config tier reload [queue_name] [agent_name] | \n"
    "\tcallcenter_config tier list | \n"
    "\tcallcenter_config queue load [queue_name] | \n"
    "\tcallcenter_config queue unload [queue_name] | \n"
    "\tcallcenter_config queue reload [queue_name] | \n"
    "\tcallcenter_config queue list | \n"
    "\tcallcenter_config queue list agents [queue_name] [status] [state] | \n"
    "\tcallcenter_config queue list members [queue_name] | \n"
    "\tcallcenter_config queue list tiers [queue_name] | \n"
    "\tcallcenter_config queue count | \n"
    "\tcallcenter_config queue count agents [queue_name] [status] [state] | \n"
    "\tcallcenter_config queue count members [queue_name] | \n"
    "\tcallcenter_config queue count tiers [queue_name]"
)
QUEUE_COLUMNS = ("name", "strategy", "moh_sound", "time_base_score", "tier_rules_apply", "tier_rule_wait_second",
                 "tier_rule_wait_multiply_level", "tier_rule_no_agent_no_wait", "discard_abandoned_after",
                 "abandoned_resume_allowed", "max_wait_time", "max_wait_time_with_no_agent",
                 "max_wait_time_with_no_agent_time_reached", "record_template", "calls_answered", "calls_abandoned",
                 "ring_progressively_delay", "skip_agents_with_external_calls", "agent_no_answer_status")
TIER_COLUMNS = ("queue", "agent", "state", "level", "position")
INVALID = "-ERR Invalid!\n"
ERRORS = {
    CC.AGENT_ALREADY_EXIST: "-ERR Agent already exist!\n",
    CC.AGENT_NOT_FOUND: "-ERR Agent not found!\n",
    CC.AGENT_INVALID_STATUS: "-ERR Invalid Agent Status!\n",
    CC.AGENT_INVALID_STATE: "-ERR Invalid Agent State!\n",
    CC.QUEUE_NOT_FOUND: "-ERR Queue not found!\n",
    CC.TIER_INVALID_STATE: "-ERR Invalid Tier State!\n",
    CC.TIER_ALREADY_EXIST: "-ERR Tier already exist!\n",
}


def register_callcenter(switch: Any) -> CallCenter:
    """Load mod_callcenter into a switch: its model, the ``callcenter`` app and this api."""
    cc = getattr(switch, "callcenter", None) or attach_callcenter(switch)
    switch.api.table["callcenter_config"] = CallcenterConfigApi(cc)
    return cc


def separate(text: str, limit: int = 8) -> list[str]:
    """switch_separate_string on blanks: single quotes group, the last field keeps the rest."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n and len(out) < limit:
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        if len(out) == limit - 1:
            out.append(text[i:].strip())
            break
        start, quoted = i, False
        while i < n and (quoted or text[i] != " "):
            if text[i] == "\\":
                i += 1
            elif text[i] == "'":
                quoted = not quoted
            i += 1
        out.append(text[start:i])
    return [_cleanup(f) for f in out]


def _cleanup(field: str) -> str:
    """cleanup_separated_string: drop the quotes, keep what a backslash escapes."""
    out, escaped = [], False
    for c in field:
        if escaped:
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c != "'":
            out.append(c)
    return "".join(out)


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """list_result_callback: a header line before the first row, then ``+OK``."""
    if not rows:
        return "+OK\n"
    return "|".join(columns) + "\n" + "".join("|".join(r) + "\n" for r in rows) + "+OK\n"


def _b(value: bool) -> str:
    return "true" if value else "false"


class CallcenterConfigApi:
    """The ``callcenter_config`` command: ``(arg) -> reply body`` like the other api handlers."""

    def __init__(self, cc: CallCenter) -> None:
        self.cc = cc
        self.sections: dict[str, Callable[[str, list[str]], str]] = {
            "agent": self.agent, "tier": self.tier, "queue": self.queue}

    def __call__(self, arg: str) -> str:
        if not arg.strip():
            return f"-USAGE: \n{USAGE}\n"
        argv = separate(arg)
        if len(argv) < 2:
            return INVALID
        handler = self.sections.get(argv[0].lower())
        return handler(argv[1].lower(), argv[2:]) if handler is not None else ""

    # -- agent ------------------------------------------------------------------------
    def agent(self, action: str, a: list[str]) -> str:
        cc = self.cc
        if action == "add":
            if len(a) < 2:
                return INVALID
            status = cc.agent_add(a[0], a[1])
            return "+OK\n" if status == CC.SUCCESS else (
                "-ERR Agent type invalid!\n" if status == CC.AGENT_INVALID_TYPE else ERRORS[status])
        if action == "del":
            if len(a) < 1:
                return INVALID
            cc.agent_del(a[0])
            return "+OK\n"
        if action == "reload":
            return INVALID if len(a) < 1 else "+OK\n"  # load_agent: agents come from the api here
        if action == "set":
            if len(a) < 3:
                return INVALID
            status = cc.agent_update(a[0], a[2], a[1])
            if status == CC.SUCCESS:
                return "+OK\n"
            if status == CC.AGENT_INVALID_TYPE:
                return "-ERR Invalid Agent Type!\n"
            if status == CC.INVALID_KEY:
                return "-ERR Invalid Agent Update KEY!\n"
            return ERRORS.get(status, "-ERR Unknown Error!\n")
        if action == "get":
            if len(a) < 2:
                return INVALID
            status, value = cc.agent_get(a[0], a[1])
            if status == CC.SUCCESS:
                return value
            return "-ERR Invalid Agent Update KEY!\n" if status == CC.INVALID_KEY else ERRORS[status]
        if action == "list":
            if len(a) > 1:
                return INVALID
            agents = [cc.agents[a[0]]] if a and a[0] in cc.agents else ([] if a else list(cc.agents.values()))
            return _table(AGENT_COLUMNS, [agent.row() for agent in agents])
        return ""

    # -- tier -------------------------------------------------------------------------
    def tier(self, action: str, a: list[str]) -> str:
        cc = self.cc
        if action == "add":
            if len(a) < 2:
                return INVALID
            level = _atoi(a[2]) if len(a) > 2 and a[2] else 1
            position = _atoi(a[3]) if len(a) > 3 and a[3] else 1
            status = cc.tier_add(a[0], a[1], level=level, position=position)
            return "+OK\n" if status == CC.SUCCESS else ERRORS.get(status, "-ERR Unknown Error!\n")
        if action == "set":
            if len(a) < 4:
                return INVALID
            status = cc.tier_update(a[0], a[3], a[1], a[2])
            if status == CC.SUCCESS:
                return "+OK\n"
            if status == CC.INVALID_KEY:
                return "-ERR Invalid Tier Update KEY!\n"
            if status == CC.QUEUE_NOT_FOUND:
                return "-ERR Agent not found!\n"  # sic: mod_callcenter.c answers this for a missing queue
            return ERRORS.get(status, "-ERR Unknown Error!\n")
        if action == "del":
            if len(a) < 2:
                return INVALID
            cc.tier_del(a[0], a[1])
            return "+OK\n"
        if action == "reload":
            return INVALID if len(a) < 1 else "+OK\n"
        if action == "list":
            tiers = sorted(cc.tiers, key=lambda t: (t.level, t.position))
            return _table(TIER_COLUMNS, [[t.queue, t.agent, t.state, str(t.level), str(t.position)] for t in tiers])
        return ""

    # -- queue ------------------------------------------------------------------------
    def queue(self, action: str, a: list[str]) -> str:
        cc = self.cc
        if action in ("load", "reload"):
            if len(a) < 1:
                return INVALID
            if action == "reload":
                cc.unload_queue(a[0])
            return "+OK\n" if cc.load_queue(a[0]) is not None else "-ERR Invalid Queue not found!\n"
        if action == "unload":
            if len(a) < 1:
                return INVALID
            cc.unload_queue(a[0])
            return "+OK\n"
        if action == "list":
            return self._queue_list(a)
        if action == "count":
            return self._queue_count(a)
        return ""

    def _agents_of(self, queue: str, status: str | None, state: str | None) -> list:
        cc = self.cc
        out = []
        for t in cc.tiers:
            agent = cc.agents.get(t.agent)
            if t.queue == queue and agent is not None and (status is None or agent.status == status) \
                    and (state is None or agent.state == state):
                out.append(agent)
        return out

    def _queue_list(self, a: list[str]) -> str:
        cc = self.cc
        if not a:
            lines = ["|".join(QUEUE_COLUMNS)]
            for q in cc.queues.values():
                values = []
                for col in QUEUE_COLUMNS:
                    value = getattr(q, col)
                    values.append(_b(value) if isinstance(value, bool) else "" if value is None else str(value))
                lines.append("|".join(values))
            return "\n".join(lines) + "\n+OK\n"
        sub, name = a[0].lower(), a[1] if len(a) > 1 else None
        if sub == "agents":
            agents = self._agents_of(name or "", a[2] if len(a) > 2 else None, a[3] if len(a) > 3 else None)
            return _table(AGENT_COLUMNS, [agent.row() for agent in agents])
        if sub == "members":
            now = cc.now()
            members = [m for m in cc.members.values() if name is None or m.queue == name]
            members.sort(key=lambda m: -m.score(now))
            if name is None:
                members.sort(key=lambda m: m.queue)
            return _table(MEMBER_COLUMNS + ("score",), [m.row(now) for m in members])
        if sub == "tiers":
            tiers = [t for t in cc.tiers if t.queue == name]
            return _table(TIER_COLUMNS, [[t.queue, t.agent, t.state, str(t.level), str(t.position)] for t in tiers])
        return INVALID

    def _queue_count(self, a: list[str]) -> str:
        cc = self.cc
        if not a:
            return f"{len(cc.queues)}\n"
        sub, name = a[0].lower(), a[1] if len(a) > 1 else ""
        if sub == "agents":
            return f"{len(self._agents_of(name, a[2] if len(a) > 2 else None, a[3] if len(a) > 3 else None))}\n"
        if sub == "members":
            return f"{sum(1 for m in cc.members.values() if m.queue == name)}\n"
        if sub == "tiers":
            return f"{sum(1 for t in cc.tiers if t.queue == name)}\n"
        return INVALID
