"""What the simulated far end of a call does, and why an originate failed (plain data, no imports)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PartyPlan:
    """What the simulated far end of one leg does."""

    outcome: str = "answer"
    ring_s: float = 2.0
    talk_s: float | None = 30.0  # None: never hangs up by itself (agent phones)
    patience_s: float | None = None  # answered but not bridged: hang up after this
    cause: str | None = None
    early_media: bool = False
    dtmf: str = ""


class OriginateError(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause
