"""Legs a worker left on the switch: the owner mark and the restart reconcile (issue 15, point 5).

Every leg a worker originates carries channel variables naming its owner
(``dialer_owner``: the worker's identity, ``<agent>@<controller host:port>``),
its agent (``dialer_agent``) and its role (``dialer_role``: ``agent`` for the
agent's waiting leg, ``call`` for a party).  A worker killed without cleanup
leaves them behind: the switch keeps channels when the ESL connection that
originated them drops.  Before the next worker with the same identity
originates a waiting leg it lists the switch's channels and decides
(:func:`plan`, pure):

* an agent leg that is answered, not bridged and parked is **reused** (the
  agent does not have to pick up again); only one, the newest;
* an agent leg that is bridged is a conversation the old worker put through:
  it is **waited for** (``park_after_bridge`` parks it again when the party
  hangs up, then it is reused); no new leg meanwhile, and the agent stays
  logged out so nothing is dialed for them while they talk (D6);
* every other agent leg of ours (a second parked one, one still ringing) is
  **hung up**;
* a party leg of ours that is not bridged is **hung up**: no worker tracks it
  any more (its attempt was recovered from the contingency file as
  ``WORKER_RESTART``), an answered party would otherwise wait in silence;
  a bridged one is left to end its conversation.

``show channels`` has no channel variables (core.db's channels table), so the
marks are read with ``uuid_getvar`` (the owner) and ``uuid_dump`` (the rest)
per channel; done once per waiting-leg origination, not per call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Optional
from urllib.parse import urlsplit

from . import switch as sw
from .esl.commands import CommandError, check_token

logger = logging.getLogger(__name__)

OWNER_VAR = "dialer_owner"
AGENT_VAR = "dialer_agent"
ROLE_VAR = "dialer_role"
ROLE_AGENT = "agent"
ROLE_CALL = "call"


def owner_id(agent: str, controller: str) -> str:
    """The worker's identity on the switch: the same agent for the same controller is the same owner."""
    parts = urlsplit(controller if "//" in controller else f"//{controller}")
    where = parts.hostname or "local"
    if parts.port:
        where = f"{where}:{parts.port}"
    return check_token(f"{agent}@{where}", "worker owner id")


@dataclass(frozen=True)
class Leg:
    """What the reconcile needs to know of one channel (from ``uuid_dump``)."""

    uuid: str
    owner: Optional[str]
    agent: Optional[str]
    role: Optional[str]
    answered: bool
    bridged_to: Optional[str]
    application: Optional[str]
    created: float = 0.0
    hungup: bool = False
    state: str = ""

    @classmethod
    def from_dump(cls, uuid: str, dump: dict) -> "Leg":
        def var(name: str) -> Optional[str]:
            return dump.get(f"variable_{name}") or None

        try:
            created = float(dump.get("Caller-Channel-Created-Time") or 0) / 1e6
        except ValueError:
            created = 0.0
        state = dump.get("Channel-State") or ""
        return cls(
            uuid=uuid, owner=var(OWNER_VAR), agent=var(AGENT_VAR), role=var(ROLE_VAR),
            answered=(dump.get("Answer-State") == "answered"),
            # bridge_to (SWITCH_BRIDGE_VARIABLE) is set by the bridge thread and cleared when it ends
            bridged_to=var("bridge_to"),
            application=var("current_application"),
            created=created,
            hungup=state in ("CS_HANGUP", "CS_REPORTING", "CS_DESTROY") or dump.get("Answer-State") == "hangup",
            state=state,
        )

    @property
    def parked(self) -> bool:
        """Answered, not bridged, parked: by the ``park`` application (CS_EXECUTE) or, after a
        bridge with ``park_after_bridge``, by ``switch_ivr_park_session`` (state CS_PARK)."""
        return (self.answered and not self.bridged_to and not self.hungup
                and (self.application == "park" or self.state == "CS_PARK"))


@dataclass
class Plan:
    """What to do with the legs found: reuse one, wait for some, hang up the others."""

    reuse: Optional[str] = None
    wait: list[str] = field(default_factory=list)
    hangup: list[str] = field(default_factory=list)

    @property
    def may_originate(self) -> bool:
        """A new waiting leg is needed: nothing to reuse, nothing to wait for."""
        return self.reuse is None and not self.wait


def plan(legs: Iterable[Leg], owner: str, agent: str, live: Iterable[str] = ()) -> Plan:
    """Decide, for the legs carrying ``owner``'s mark, which to reuse, wait for and hang up.

    ``live``: uuids the running worker itself tracks (its calls in progress when
    its own waiting leg dropped): those are not left-overs and are never touched.
    """
    out = Plan()
    mine = set(live)
    ours = [leg for leg in legs if leg.owner == owner and not leg.hungup and leg.uuid not in mine]
    agent_legs = [leg for leg in ours if leg.role == ROLE_AGENT and leg.agent == agent]
    bridged = [leg for leg in agent_legs if leg.bridged_to]
    parked = sorted((leg for leg in agent_legs if leg.parked), key=lambda leg: (leg.created, leg.uuid))
    if bridged:
        out.wait = [leg.uuid for leg in bridged]
    elif parked:
        out.reuse = parked[-1].uuid
    keep = set(out.wait) | ({out.reuse} if out.reuse else set())
    out.hangup = [leg.uuid for leg in agent_legs if leg.uuid not in keep]
    out.hangup += [leg.uuid for leg in ours if leg.role == ROLE_CALL and not leg.bridged_to]
    return out


def survey(switch, owner: str) -> list[Leg]:
    """The switch's channels carrying ``owner``'s mark (``show channels`` + ``uuid_getvar``/``uuid_dump``)."""
    found = []
    for row in switch.show_channels():
        uuid = str(row.get("uuid") or "")
        try:
            if not uuid or switch.getvar(uuid, OWNER_VAR) != owner:
                continue
            dump = switch.dump(uuid)
        except CommandError:  # a uuid the builders refuse is not one of ours
            continue
        except sw.CommandFailed as exc:  # the channel ended between the list and the question
            logger.debug("survey: channel %s: %s", uuid, exc)
            continue
        if dump is not None:
            found.append(Leg.from_dump(uuid, dump))
    return found
