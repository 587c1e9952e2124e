"""Another ESL client library drives the simulator: genesis (asyncio), not only greenswitch (gevent).

A second, independent implementation of the client side catches what our
own codec and greenswitch happen to agree on but FreeSWITCH does not: the
auth handshake, api bodies, bgapi replies and BACKGROUND_JOB bodies, event
subscription and the outbound-socket session (connect, filter, event plain
all, linger, sendmsg execute with Event-UUID, hangup).

genesis runs on asyncio and the simulator on gevent: the asyncio client runs
in a real OS thread while the test's greenlet yields to the simulator.
"""
from __future__ import annotations

import asyncio
import socket
import time
import uuid as uuid_mod

import gevent
import pytest
from gevent import monkey

from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.config import DEFAULT_DIALPLAN

genesis = pytest.importorskip("genesis")
from genesis.exceptions import AuthenticationError  # noqa: E402

Thread = monkey.get_original("threading", "Thread")
TIMEOUT_S = 20.0


def run_async(make_coro, timeout: float = TIMEOUT_S):
    """Run ``make_coro()`` on an asyncio loop in a real thread; the simulator's greenlets run meanwhile."""
    box: dict = {}

    def target():
        try:
            box["result"] = asyncio.run(asyncio.wait_for(make_coro(), timeout))
        except BaseException as err:  # handed to the test's greenlet below
            box["error"] = err

    thread = Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout + 5
    while thread.is_alive() and time.monotonic() < deadline:
        gevent.sleep(0.005)
    assert not thread.is_alive(), "the asyncio client did not finish"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def free_port() -> int:
    orig_socket = monkey.get_original("socket", "socket")
    s = orig_socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
def app_port():
    return free_port()


@pytest.fixture
def sim(app_port):
    plan = dict(DEFAULT_DIALPLAN)
    plan["7000"] = (("socket", f"127.0.0.1:{app_port} async full"),)
    switch = SimSwitch(SimConfig(time_scale=0.2, dialplan=plan), port=0).start()
    try:
        yield switch
    finally:
        switch.stop(timeout=2)


async def wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def test_genesis_inbound_authenticates_and_reads_api_bodies(sim):
    async def scenario():
        async with genesis.Inbound("127.0.0.1", sim.port, "ClueCon") as client:
            status = await client.send("api status")
            unknown = await client.send("api nosuchcommand")
            return status, unknown

    status, unknown = run_async(scenario)
    assert status["Content-Type"] == "api/response"
    assert status.body.startswith("UP 0 years") and "FreeSWITCH (Version 1.10.12" in status.body
    assert unknown.body == "-ERR nosuchcommand Command not found!\n"


def test_genesis_refuses_a_wrong_password(sim):
    async def scenario():
        async with genesis.Inbound("127.0.0.1", sim.port, "wrong"):
            pass

    with pytest.raises(AuthenticationError):
        run_async(scenario)


def test_genesis_bgapi_originate_gets_its_background_job(sim):
    leg = str(uuid_mod.uuid4())

    async def scenario():
        jobs = []
        async with genesis.Inbound("127.0.0.1", sim.port, "ClueCon") as client:
            client.on("BACKGROUND_JOB", jobs.append)
            await client.send("event plain BACKGROUND_JOB")
            reply = await client.send(f"bgapi originate {{origination_uuid={leg}}}loopback/9993 &park()")
            await wait_for(lambda: jobs)
            await client.send(f"api uuid_kill {leg}")
            return reply, jobs

    reply, jobs = run_async(scenario)
    assert reply["Reply-Text"] == f"+OK Job-UUID: {reply['Job-UUID']}"
    assert jobs[0]["Job-UUID"] == reply["Job-UUID"] and jobs[0]["Job-Command"] == "originate"
    assert jobs[0].body == f"+OK {leg}\n"


def test_genesis_sees_a_channels_events_in_order(sim):
    leg = str(uuid_mod.uuid4())
    names = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")

    async def scenario():
        seen = []
        async with genesis.Inbound("127.0.0.1", sim.port, "ClueCon") as client:
            for name in names:
                client.on(name, seen.append)
            await client.send("event plain " + " ".join(names))
            answered = await client.send(f"api originate {{origination_uuid={leg}}}loopback/9993 &park()")
            await wait_for(lambda: any(e["Event-Name"] == "CHANNEL_PARK" and e["Unique-ID"] == leg for e in seen))
            killed = await client.send(f"api uuid_kill {leg}")
            await wait_for(lambda: any(e["Event-Name"] == "CHANNEL_HANGUP_COMPLETE" and e["Unique-ID"] == leg
                                       for e in seen))
            return answered, killed, [e for e in seen if e["Unique-ID"] == leg]

    answered, killed, events = run_async(scenario)
    assert answered.body == f"+OK {leg}\n" and killed.body == "+OK\n"
    assert [e["Event-Name"] for e in events] == list(names)
    # the real switch repeats Hangup-Cause in CHANNEL_HANGUP_COMPLETE (a_inbound.jsonl); genesis keeps both
    assert events[-1]["Hangup-Cause"] == ["NORMAL_CLEARING", "NORMAL_CLEARING"]
    assert events[-1]["variable_uuid"] == leg


def test_genesis_outbound_session_answers_plays_and_hangs_up(sim, app_port):
    """FreeSWITCH's `socket` app connects to a genesis Outbound server; the app answers, plays, hangs up."""
    leg = str(uuid_mod.uuid4())
    steps = []

    async def app(session):
        steps.append(("connect", session.uuid, session.context.get("Event-Name")))
        await session.channel.answer()
        played = await session.channel.playback("tone_stream://%(300,0,440)")
        steps.append(("playback", played["Event-Name"], played["Application"], played["Application-Response"]))
        await session.channel.hangup()
        steps.append(("hangup",))

    async def scenario():
        server = genesis.Outbound(app, "127.0.0.1", app_port, events=True, linger=True)
        await server.start(block=False)
        try:
            async with genesis.Inbound("127.0.0.1", sim.port, "ClueCon") as client:
                await client.send(f"bgapi originate {{origination_uuid={leg}}}loopback/7000 &park()")
                await wait_for(lambda: steps and steps[-1] == ("hangup",))
        finally:
            await server.stop()

    run_async(scenario)
    b_leg = steps[0][1]
    assert steps[0][2] == "CHANNEL_DATA"
    assert steps[1] == ("playback", "CHANNEL_EXECUTE_COMPLETE", "playback", "FILE PLAYED")
    gevent.sleep(0.2)
    channel = sim.history_of(b_leg)
    assert channel is not None and channel.name == "loopback/7000-b"
    assert channel.answered and channel.hangup_cause == "NORMAL_CLEARING"
