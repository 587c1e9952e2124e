"""The simulated switch limits new sessions per second as FreeSWITCH does (sessions-per-second, 30 by default).

switch_core_session_request_uuid: ``sps = --runtime.sps; if (sps <= 0) fail``, the counter
reset to sessions-per-second once a second; a refused session fails the originate with
DESTINATION_OUT_OF_ORDER (sofia_outgoing_channel).  The tests pin the simulated clock so
the burst cannot straddle a second.
"""
from __future__ import annotations

import pytest

from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.plans import OriginateError
from esl_dialer.sim.testing import RawEslClient


class PinnedClock:
    """The switch's clock held at one simulated instant (moved by hand)."""

    def __init__(self, real_clock, now: float = 1_800_000_000.25) -> None:
        self._real = real_clock
        self.t = now

    def now(self) -> float:
        return self.t

    def real(self, sim_seconds: float) -> float:
        return self._real.real(sim_seconds)


@pytest.fixture
def pinned():
    def make(**config):
        sw = SimSwitch(SimConfig(time_scale=0.05, **config), port=0)
        sw.clock = PinnedClock(sw.clock)
        sw.headers.clock = sw.clock
        return sw.start()
    made = []

    def factory(**config):
        sw = make(**config)
        made.append(sw)
        return sw
    yield factory
    for sw in made:
        sw.stop(timeout=2)


@pytest.fixture
def client():
    clients = []

    def connect(sw):
        c = RawEslClient("127.0.0.1", sw.port)
        c.auth(sw.password)
        clients.append(c)
        return c
    yield connect
    for c in clients:
        c.close()


def test_the_default_rate_lets_29_sessions_through_in_one_second_and_refuses_the_30th(pinned):
    sw = pinned()
    assert sw.config.sessions_per_second == 30
    for _ in range(29):
        sw.admit_session()
    with pytest.raises(OriginateError) as err:
        sw.admit_session()
    assert err.value.cause == "DESTINATION_OUT_OF_ORDER"
    assert sw.throttled == 1
    sw.clock.t += 1.0  # the next second: the counter is full again
    for _ in range(29):
        sw.admit_session()


def test_originates_over_the_rate_fail_with_destination_out_of_order(pinned, client):
    sw = pinned(sessions_per_second=4)
    c = client(sw)
    replies = [c.reply(f"api originate sofia/gateway/gw/1555000{i:04d} &park()").text for i in range(5)]
    assert [r.split()[0] for r in replies] == ["+OK", "+OK", "+OK", "-ERR", "-ERR"]
    assert replies[3] == "-ERR DESTINATION_OUT_OF_ORDER\n"
    assert len(sw.channels) == 3


def test_a_loopback_call_takes_two_sessions(pinned, client):
    sw = pinned(sessions_per_second=5)
    c = client(sw)
    assert c.reply("api originate loopback/9993 &park()").text.startswith("+OK")
    assert c.reply("api originate loopback/9993 &park()").text.startswith("+OK")
    assert c.reply("api originate loopback/9993 &park()").text == "-ERR DESTINATION_OUT_OF_ORDER\n"
    assert len(sw.channels) == 4


def test_a_caller_over_the_rate_is_refused_and_a_later_second_takes_calls_again(pinned, client):
    sw = pinned(sessions_per_second=2)
    c = client(sw)
    assert c.reply("api sim_inbound 9993 15551230001").text.startswith("+OK")
    assert c.reply("api sim_inbound 9993 15551230002").text == "-ERR DESTINATION_OUT_OF_ORDER\n"
    sw.clock.t += 1.0
    assert c.reply("api sim_inbound 9993 15551230003").text.startswith("+OK")


def test_the_session_limit_refuses_a_session_beyond_max_sessions(pinned, client):
    sw = pinned(sessions_per_second=1000, max_sessions=2)
    c = client(sw)
    assert c.reply("api originate loopback/9993 &park()").text.startswith("+OK")  # two sessions
    assert c.reply("api originate sofia/gateway/gw/15550001234 &park()").text == "-ERR DESTINATION_OUT_OF_ORDER\n"
