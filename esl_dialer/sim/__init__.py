"""A simulated FreeSWITCH speaking the real event-socket protocol (``dialer sim``).

    from esl_dialer.sim import SimSwitch, SimConfig, load_sim_config
    sim = SimSwitch(load_sim_config("freeswitch/sim.toml"), port=0).start()
    sim.script("15551234567", outcome="answer", ring_s=2, talk_s=30)

Everything runs in gevent greenlets of the calling process.  The layers are
described in :mod:`esl_dialer.sim.simulator`.
"""
from .chan_channel import CallState, Channel, ChannelState
from .config import Dist, NumberRule, SimConfig, SimConfigError, UserPhone, load_sim_config
from .plans import PartyPlan
from .simulator import SimSwitch

__all__ = [
    "SimSwitch", "SimConfig", "SimConfigError", "load_sim_config", "Channel", "ChannelState", "CallState",
    "Dist", "NumberRule", "UserPhone", "PartyPlan",
]
