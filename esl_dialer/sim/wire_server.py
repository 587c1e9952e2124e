"""Accepting inbound event-socket clients (layer ``wire_``)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gevent import socket as gsocket
from gevent.server import StreamServer

from .wire_listener import Listener

if TYPE_CHECKING:  # pragma: no cover
    from .model_switch import SwitchCore as SimSwitch

logger = logging.getLogger(__name__)


class EslServer:
    """gevent StreamServer accepting inbound event-socket clients."""

    def __init__(self, switch: "SimSwitch") -> None:
        self.switch = switch
        self.server = StreamServer((switch.host, switch._port), self._handle)
        self.listeners: set[Listener] = set()

    @property
    def server_port(self) -> int:
        return self.server.server_port

    def start(self) -> None:
        self.server.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        for listener in list(self.listeners):
            listener.close()

    def _handle(self, sock, address) -> None:
        # mod_event_socket's listener_run sets TCP_NODELAY: without it Nagle holds small event
        # frames back by tens of ms, which would hide the switch's own 20 ms timing
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        listener = Listener(self.switch, sock, address)
        self.listeners.add(listener)
        try:
            listener.run()
        except Exception:  # one broken connection must never take the server down
            logger.exception("sim: connection %s failed", address)
        finally:
            self.listeners.discard(listener)
            listener.close()
