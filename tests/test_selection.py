"""Selection rules and refill sizing, pure (SPEC P3, P4, P5)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from controller.selection import EMPTY_MARK, FeedState, plan, refill_amount, refill_target, tiers
from esl_dialer.messages import SelectionMode as M


def _run(mode, feeds, batches):
    """Plan ``batches`` refills in a row, carrying the served counters like the service does."""
    seq = []
    for n in batches:
        p = plan(mode, feeds, n)
        seq += p.sequence
        feeds = [FeedState(f.pool_id, f.position, f.weight, p.served[f.pool_id], f.available) for f in feeds]
    return seq


def test_p4_priority_drains_first_pool_then_next():
    feeds = [FeedState(2, position=1), FeedState(1, position=0, available=3)]
    assert plan(M.PRIORITY, feeds, 5).sequence == (1, 1, 1, 2, 2)


def test_p4_percentage_70_30_exact_in_every_window_of_200():
    feeds = [FeedState(1, weight=70), FeedState(2, weight=30)]
    seq = _run(M.PERCENTAGE, feeds, [20, 7, 133, 50, 500, 20, 270])
    for start in range(0, len(seq) - 200 + 1):
        window = seq[start:start + 200]
        assert abs(window.count(1) / 200 - 0.70) <= 0.02


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5),
    batches=st.lists(st.integers(min_value=1, max_value=60), min_size=4, max_size=20),
)
def test_p4_percentage_within_2pp_over_any_200(weights, batches):
    feeds = [FeedState(i + 1, weight=w) for i, w in enumerate(weights)]
    seq = _run(M.PERCENTAGE, feeds, batches + [200])
    total = sum(weights)
    for start in range(0, len(seq) - 200 + 1, 7):
        window = seq[start:start + 200]
        for i, w in enumerate(weights):
            assert abs(window.count(i + 1) / 200 - w / total) <= 0.02


def test_p4_combined_tiers_by_position_split_by_weight():
    feeds = [FeedState(1, 0, 1, available=4), FeedState(2, 0, 1, available=4), FeedState(3, 1, 1)]
    p = plan(M.COMBINED, feeds, 10)
    assert sorted(p.sequence[:8]) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert p.sequence[8:] == (3, 3)
    assert [len(t) for t in tiers(M.COMBINED, feeds)] == [2, 1]


def test_p5_depleted_pool_falls_through_and_share_goes_to_the_others():
    feeds = [FeedState(1, weight=50, available=0), FeedState(2, weight=25), FeedState(3, weight=25)]
    p = plan(M.PERCENTAGE, feeds, 100)
    assert p.counts() == {2: 50, 3: 50}
    assert p.served[1] == EMPTY_MARK


def test_p5_pool_running_dry_mid_plan():
    feeds = [FeedState(1, weight=70, available=10), FeedState(2, weight=30)]
    p = plan(M.PERCENTAGE, feeds, 50)
    assert p.counts() == {1: 10, 2: 40}


def test_p4_zero_weights_mean_equal_shares():
    p = plan(M.PERCENTAGE, [FeedState(1), FeedState(2)], 10)
    assert p.counts() == {1: 5, 2: 5}


def test_p4_plan_is_deterministic():
    feeds = [FeedState(1, weight=3), FeedState(2, weight=2), FeedState(3, weight=1)]
    assert plan(M.PERCENTAGE, feeds, 60) == plan(M.PERCENTAGE, feeds, 60)


def test_p3_refill_target_holds_lead_minutes_of_work_within_bounds():
    assert refill_target(0, 5, 20, 500) == 20
    assert refill_target(30, 5, 20, 500) == 150
    assert refill_target(1000, 5, 20, 500) == 500
    assert refill_amount(0, 150, 20) == 150
    assert refill_amount(100, 150, 20) == 0  # more than half the target: no refill yet
    assert refill_amount(70, 150, 20) == 80
    assert refill_amount(10, 20, 20) == 10
