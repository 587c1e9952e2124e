"""Selection rules and refill sizing: pure functions (the calling window is controller.calling_hours).

No database, no clock: callers pass counts and the time, and get decisions
back, so the virtual-time simulator and the tests run exactly this code.

Selection (SPEC P4, P5)
    *priority*: drain the feed with the lowest ``position`` first, then the next.
    *percentage*: every feed gets its ``weight`` share.  Scheduling is by
    largest deficit keyed on counts: the next record comes from the feed whose
    ``share * (served_total + 1) - served`` is largest.  Each feed's count stays
    within one record of its exact share at every point of the sequence, so
    over any 200 consecutive records handed out a feed is within ±1 record
    (±0.5 pp) of its share, well inside the ±2 pp the spec asks for.
    *combined*: feeds with the same ``position`` form a tier; tiers are drained
    in order and a tier's feeds split by weight.
    A feed with no eligible records is skipped and its share goes to the
    others (fallthrough).  The ``served`` counters are the schedule's state;
    when the set of feeds with records changes, the counters restart at zero
    (a feed that comes back must not get a burst to "catch up"); a feed that
    was empty at the last plan is marked ``served = -1``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

from esl_dialer.messages import SelectionMode

#: served value that marks a feed which had no records at the last plan
EMPTY_MARK = -1


@dataclasses.dataclass(frozen=True)
class FeedState:
    pool_id: int
    position: int = 0
    weight: float = 0.0
    served: int = 0
    #: how many records the pool can give now; None = "plenty" (unknown)
    available: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Plan:
    #: pool id of each record to hand over, in hand-out order
    sequence: tuple[int, ...]
    #: new ``served`` counter per pool id (the schedule's state to store)
    served: dict[int, int]

    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for pid in self.sequence:
            out[pid] = out.get(pid, 0) + 1
        return out


def _has_records(feed: FeedState) -> bool:
    return feed.available is None or feed.available > 0


def tiers(mode: SelectionMode, feeds: Sequence[FeedState]) -> list[list[FeedState]]:
    """Feeds grouped in the order they are drained."""
    ordered = sorted(feeds, key=lambda f: (f.position, f.pool_id))
    if mode == SelectionMode.PERCENTAGE:
        return [ordered] if ordered else []
    if mode == SelectionMode.PRIORITY:
        return [[f] for f in ordered]
    groups: dict[int, list[FeedState]] = {}
    for f in ordered:
        groups.setdefault(f.position, []).append(f)
    return [groups[p] for p in sorted(groups)]


def plan(mode: SelectionMode | str, feeds: Sequence[FeedState], n: int) -> Plan:
    """Which pool each of the next ``n`` records comes from (fewer if all run dry)."""
    mode = SelectionMode(mode)
    if n < 0:
        raise ValueError("n must be >= 0")
    served: dict[int, int] = {f.pool_id: f.served for f in feeds}
    left: dict[int, Optional[int]] = {f.pool_id: f.available for f in feeds}
    sequence: list[int] = []
    for tier in tiers(mode, feeds):
        if len(sequence) >= n:
            break
        live = [f for f in tier if _has_records(f)]
        if not live:
            continue
        # Restart the schedule when the set of feeds with records changed.
        marks_ok = all((served[f.pool_id] >= 0) == _has_records(f) for f in tier)
        if not marks_ok:
            for f in tier:
                served[f.pool_id] = 0 if _has_records(f) else EMPTY_MARK
        _fill_tier(live, served, left, sequence, n)
    return Plan(tuple(sequence), served)


def _fill_tier(
    live: list[FeedState], served: dict[int, int], left: dict[int, Optional[int]],
    sequence: list[int], n: int,
) -> None:
    weights = {f.pool_id: max(0.0, float(f.weight)) for f in live}
    if sum(weights.values()) <= 0:
        weights = {pid: 1.0 for pid in weights}
    active = [f.pool_id for f in live]
    total_w = sum(weights[p] for p in active)
    total = sum(served[p] for p in active)
    while len(sequence) < n and active:
        best = None
        best_deficit = -math.inf
        for pid in active:  # ties go to the earlier feed (position order)
            deficit = weights[pid] / total_w * (total + 1) - served[pid]
            if deficit > best_deficit + 1e-12:
                best, best_deficit = pid, deficit
        assert best is not None
        sequence.append(best)
        served[best] += 1
        total += 1
        if left[best] is not None:
            left[best] -= 1
            if left[best] <= 0:
                # Ran dry mid-plan: the others share its part from here on.
                active.remove(best)
                for pid in active:
                    served[pid] = 0
                served[best] = EMPTY_MARK
                total = 0
                total_w = sum(weights[p] for p in active)


# --- refill sizing (P3) --------------------------------------------------------


def refill_target(rate_per_minute: float, lead_minutes: float, min_size: int, max_size: int) -> int:
    """How many records a queue should hold: ``lead_minutes`` of work, within bounds."""
    want = math.ceil(max(0.0, rate_per_minute) * max(0.0, lead_minutes))
    return max(0, min(max_size, max(min_size, want)))


def refill_amount(remaining: int, target: int, batch_size: int) -> int:
    """Records to move into a queue now: none while it holds more than half its
    target and at least a batch (avoid a refill on every lease), else top up."""
    if remaining >= target or (remaining * 2 > target and remaining >= batch_size):
        return 0
    return target - remaining
