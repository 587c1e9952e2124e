"""The ``socket`` dialplan application: the simulated switch dials out to an app.

Like mod_event_socket's socket app: connect to ``host:port`` (refused -> the
app returns and the dialplan goes on), then serve that connection as a
listener bound to the channel; the app's first command is ``connect``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent
from gevent import socket as gsocket

from .chan_session import Session
from .wire_listener import Listener

if TYPE_CHECKING:  # pragma: no cover
    from .model_switch import SwitchCore as SimSwitch

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


def connect_outbound(switch: "SimSwitch", session: "Session", host: str, port: int, *, async_mode: bool = True,
                     full: bool = True) -> Listener | None:
    ch = session.ch
    try:
        sock = gsocket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as err:
        logger.warning("sim call %s: socket %s:%s failed: %s", ch.uuid, host, port, err)
        return None
    sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    listener = Listener(switch, sock, (host, port), session=session, async_mode=async_mode, full=full)
    g = switch.spawn(listener.run)
    g.name = f"sim-outbound-{ch.uuid[:8]}"
    logger.info("sim call %s: outbound socket connected to %s:%s", ch.uuid, host, port)
    gevent.sleep(0)
    return listener
