"""Enums and message shapes shared by the workers and the controller.

Kept tiny and dependency-free: the worker on an agent's PC and the controller
both import it, and nothing else crosses that boundary except JSON over HTTP.
"""
from __future__ import annotations

import enum


class AgentState(str, enum.Enum):
    """Voice-connection state of an agent (SPEC D8)."""

    IDLE = "idle"
    DIALING = "dialing"
    TALKING = "talking"
    WRAPUP = "wrapup"
    PAUSED = "paused"
    OFFLINE = "offline"


class AttemptResult(str, enum.Enum):
    """Outcome of one call attempt, as uploaded by a device (SPEC P6)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    MACHINE = "machine"
    DNC = "dnc"  # found on the DNC list right before dialing (D9)
    OUTSIDE_HOURS = "outside_hours"  # refused at dial time by the calling window (X1)


class RecordStatus(str, enum.Enum):
    """Where a call record is in its life; changed only by controller.record_status."""

    READY = "ready"  # in its pool, eligible once next_attempt_at has passed
    QUEUED = "queued"  # moved into a worker's queue (P2), not yet leased
    LEASED = "leased"  # held by exactly one worker until result or lease expiry (D1)
    DONE = "done"  # final: answered and dispositioned
    EXHAUSTED = "exhausted"  # final: max attempts reached (P7)
    DNC = "dnc"  # final: scrubbed against the do-not-call list (D9)


class DialMode(str, enum.Enum):
    """Dial modes (SPEC D2)."""

    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class TimezonePolicy(str, enum.Enum):
    """How a record's local time is decided for the calling window (X1).

    ``number``: the time zone phonenumbers gives the number's prefix; when a
    prefix spans several zones, the window must hold in all of them (strictest).
    ``campaign``: the campaign's own ``default_timezone`` for every record.
    """

    NUMBER = "number"
    CAMPAIGN = "campaign"


class SelectionMode(str, enum.Enum):
    """Selection rule of a queue (SPEC P4)."""

    PRIORITY = "priority"
    PERCENTAGE = "percentage"
    COMBINED = "combined"


class ProxyState(str, enum.Enum):
    """Life of a proxy call in a remote center's ACD queue (SPEC R4-R6, R9).

    ``waiting``: in the queue, no operator yet.  ``offered``: at the head with
    an operator reserved for it, waiting for the bridged leg.  ``connected``:
    the bridged leg reached the operator.  The rest are final.
    """

    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
