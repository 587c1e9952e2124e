"""SimSwitch: the simulated FreeSWITCH, assembled from its layers.

Read the package top-down; each layer imports only the ones below it
(``tests/test_sim_layering.py`` checks it):

- ``wire_*``   the event socket: TCP connections, frames in and out, fan-out
               of events (:mod:`.wire_server`, :mod:`.wire_listener`,
               :mod:`.wire_outbound`);
- ``cmd_*``    commands: mod_event_socket's (:mod:`.cmd_socket`) and
               mod_commands' api (:mod:`.cmd_api`);
- ``model_*``  the switch model: channels, events, bridge, hang-up,
               originate and the call model (:mod:`.model_switch`,
               :mod:`.model_bridge`, :mod:`.model_originate`, the mod_callcenter
               subset in :mod:`.model_callcenter`);
- ``chan_*``   one channel: its state and event headers
               (:mod:`.chan_channel`), its session greenlet
               (:mod:`.chan_session`) and the dialplan applications it runs
               (:mod:`.chan_apps`, :mod:`.chan_record_say`);
- plain names  pure data with no simulator imports: :mod:`.config`,
               :mod:`.dialstring`, :mod:`.events`, :mod:`.plans`.
"""
from __future__ import annotations

import logging

from .chan_session import Session
from .cmd_api import ApiCommands
from .cmd_callcenter import register_callcenter
from .config import SimConfig
from .model_switch import SwitchCore
from .wire_listener import Listener
from .wire_outbound import connect_outbound
from .wire_server import EslServer

logger = logging.getLogger(__name__)


class SimSwitch(SwitchCore):
    """A simulated FreeSWITCH speaking mod_event_socket: the model plus its commands and sockets."""

    def __init__(self, config: SimConfig | None = None, host: str | None = None, port: int | None = None,
                 password: str | None = None) -> None:
        super().__init__(config, host=host, port=port, password=password)
        self.api = ApiCommands(self)
        register_callcenter(self)  # mod_callcenter: switch.callcenter, the callcenter app, callcenter_config

    def start(self) -> "SimSwitch":
        self._server = EslServer(self)
        self._server.start()
        super().start()
        logger.info("sim switch listening on %s:%s", self.host, self.port)
        return self

    def connect_outbound(self, session: Session, host: str, port: int, *, async_mode: bool = True,
                         full: bool = True) -> Listener | None:
        """The ``socket`` application's dial-out (called by :mod:`.chan_apps`)."""
        return connect_outbound(self, session, host, port, async_mode=async_mode, full=full)
