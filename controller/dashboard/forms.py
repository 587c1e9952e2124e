"""Parse and check the queue-rules form (P4, P5, P8) into plain values.

Pure: takes the submitted form (a mapping with ``getlist``) and returns a
frozen :class:`RulesEdit` or raises :class:`InvalidInput` naming the field,
so the view can show the message next to the form.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Protocol

from esl_dialer.messages import SelectionMode

from ..errors import InvalidInput

MAX_LEAD_MINUTES = 24 * 60
MAX_POSITION = 10_000


class FormLike(Protocol):
    def get(self, key: str, default: Optional[str] = None) -> Optional[str]: ...
    def getlist(self, key: str) -> list[str]: ...


@dataclasses.dataclass(frozen=True)
class FeedEdit:
    pool_id: int
    position: int
    weight: float
    shareable: bool


@dataclasses.dataclass(frozen=True)
class RulesEdit:
    selection_mode: SelectionMode
    lead_minutes: float
    feeds: tuple[FeedEdit, ...]  # the complete new set of feeds, in position order


def _int(value: Optional[str], field: str, label: str, lo: int, hi: int) -> int:
    try:
        n = int((value or "").strip())
    except ValueError:
        raise InvalidInput(f"{label} must be a whole number", field=field) from None
    if not lo <= n <= hi:
        raise InvalidInput(f"{label} must be between {lo} and {hi}", field=field)
    return n


def _float(value: Optional[str], field: str, label: str, lo: float, hi: float) -> float:
    try:
        x = float((value or "").strip().replace(",", "."))
    except ValueError:
        raise InvalidInput(f"{label} must be a number", field=field) from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise InvalidInput(f"{label} must be between {lo:g} and {hi:g}", field=field)
    return x


def parse_rules(form: FormLike, pool_names: dict[int, str]) -> RulesEdit:
    """``pool_names``: the campaign's pools (id -> name); feeds must name one of them."""
    mode_raw = (form.get("selection_mode") or "").strip()
    try:
        mode = SelectionMode(mode_raw)
    except ValueError:
        raise InvalidInput("choose a selection mode: priority, percentage or combined",
                           field="selection_mode") from None
    lead = _float(form.get("lead_minutes"), "lead_minutes", "Lead minutes", 0.5, MAX_LEAD_MINUTES)

    feeds: dict[int, FeedEdit] = {}
    for raw in form.getlist("feed_pool"):
        pool_id = _int(raw, "feed_pool", "Pool", 1, 2**62)
        name = pool_names.get(pool_id)
        if name is None:
            raise InvalidInput(f"pool {pool_id} is not in this campaign", field="feed_pool")
        if form.get(f"feed-{pool_id}-remove"):
            continue
        feeds[pool_id] = FeedEdit(
            pool_id=pool_id,
            position=_int(form.get(f"feed-{pool_id}-position"), f"feed-{pool_id}-position",
                          f"Position of pool {name}", 0, MAX_POSITION),
            weight=_float(form.get(f"feed-{pool_id}-weight"), f"feed-{pool_id}-weight",
                          f"Weight of pool {name}", 0, 100),
            shareable=bool(form.get(f"feed-{pool_id}-shareable")),
        )

    new_pool = (form.get("new_pool") or "").strip()
    if new_pool:
        pool_id = _int(new_pool, "new_pool", "New pool", 1, 2**62)
        name = pool_names.get(pool_id)
        if name is None:
            raise InvalidInput(f"pool {pool_id} is not in this campaign", field="new_pool")
        if pool_id in feeds:
            raise InvalidInput(f"pool {name} already feeds this queue", field="new_pool")
        feeds[pool_id] = FeedEdit(
            pool_id=pool_id,
            position=_int(form.get("new_position") or str(len(feeds)), "new_position",
                          f"Position of pool {name}", 0, MAX_POSITION),
            weight=_float(form.get("new_weight") or "0", "new_weight", f"Weight of pool {name}", 0, 100),
            shareable=bool(form.get("new_shareable")),
        )

    ordered = tuple(sorted(feeds.values(), key=lambda f: (f.position, f.pool_id)))
    if mode in (SelectionMode.PERCENTAGE, SelectionMode.COMBINED) and ordered:
        total = sum(f.weight for f in ordered)
        if mode is SelectionMode.PERCENTAGE and abs(total - 100.0) > 0.01:
            raise InvalidInput(f"in percentage mode the weights must add up to 100 (they add up to {total:g})",
                               field="weight")
        if total <= 0:
            raise InvalidInput("give at least one pool a weight above 0", field="weight")
    return RulesEdit(selection_mode=mode, lead_minutes=lead, feeds=ordered)
