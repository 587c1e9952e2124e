"""The outbound-socket server FreeSWITCH connects to for every IVR call (SPEC R1).

Dialplan: ``<action application="socket" data="127.0.0.1:8084 async full"/>``.

Built on greenswitch's ``OutboundESLServer`` (its application contract,
``max_connections`` and ``connection_count``), with its listener replaced:
greenswitch polls ``accept`` every 100 ms, calls ``sys.exit`` when it cannot
bind, cannot bind port 0, and lets a call's greenlet outlive a stuck
``connect``.  Here the listener blocks in gevent's ``accept``, each call is one
greenlet in a :class:`gevent.pool.Group` that always ends by closing its
session (reader and dispatcher greenlets killed, socket closed), and
:meth:`stop` drains the calls for a bounded time, then kills what is left.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import gevent
import gevent.pool
import gevent.socket
from greenswitch.esl import NotConnectedError, OutboundESLServer, OutboundSessionHasGoneAway

from ..esl import commands as cmds
from .session import CallerGone, CommandTimeout, IvrSession

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8084
CONNECT_TIMEOUT_S = 5.0


class CallApp(Protocol):
    def run(self) -> Any: ...


class IvrServer(OutboundESLServer):
    """``IvrServer(lambda session: IvrCall(session, settings)).start()``."""

    def __init__(self, application: Callable[[IvrSession], CallApp], host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, max_connections: int = 5000, backlog: int = 1024,
                 command_timeout_s: float = 10.0) -> None:
        super().__init__(bind_address=host, bind_port=port, application=application,
                         max_connections=max_connections)
        self.backlog = backlog
        self.command_timeout_s = command_timeout_s
        self.calls = gevent.pool.Group()
        self.port: int | None = None
        self.total_calls = 0
        self.rejected_calls = 0
        self._accept_greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Bind (``port=0`` picks a free port, see ``.port``) and accept in a greenlet."""
        sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_STREAM)
        sock.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.bind_address, self.bind_port[0]))
        except OSError:
            sock.close()
            raise
        sock.listen(self.backlog)
        self.server = sock
        self.port = self.bound_port = sock.getsockname()[1]
        self._running = True
        self._accept_greenlet = gevent.spawn(self._accept_loop)
        logger.info("IVR outbound-socket server on %s:%s", self.bind_address, self.port)

    def listen(self) -> None:
        """greenswitch's blocking entry point: serve until :meth:`stop`."""
        self.serve_forever()

    def serve_forever(self) -> None:
        if self._accept_greenlet is None:
            self.start()
        self._accept_greenlet.join()

    def _accept_loop(self) -> None:
        while self._running:
            try:
                sock, address = self.server.accept()
            except OSError as err:
                if not self._running:
                    break
                logger.warning("accept failed: %s", err)
                gevent.sleep(0.1)
                continue
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            self.calls.spawn(self._serve, sock, address)

    def _serve(self, sock, address) -> None:
        session = IvrSession(address, sock, command_timeout_s=self.command_timeout_s)
        self.connection_count += 1
        self.total_calls += 1
        try:
            # The connect reply is the channel data (one header block, see b_outbound.jsonl).
            reply = session.send(cmds.CONNECT, timeout=CONNECT_TIMEOUT_S)
            session.session_data = reply.headers
            session._outbound_connected = True
        except (CommandTimeout, OutboundSessionHasGoneAway, NotConnectedError, OSError) as err:
            logger.warning("outbound connection from %s: no connect reply (%s)", address, err)
            self.connection_count -= 1
            session.close()
            return
        try:
            if self.connection_count > self.max_connections:
                self.rejected_calls += 1
                logger.warning("IVR full (%d calls): rejecting %s", self.max_connections,
                               session.session_data.get("Unique-ID"))
                session.execute("hangup", "NORMAL_TEMPORARY_FAILURE", timeout=2.0)
                return
            self.application(session).run()
        except (CallerGone, CommandTimeout, OutboundSessionHasGoneAway):
            pass
        except Exception:  # noqa: BLE001 - one call's bug never stops the server
            logger.exception("call from %s failed", address)
        finally:
            self.connection_count -= 1
            session.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let calls end for ``timeout`` s, then kill the rest."""
        self._running = False
        if self.server is not None:
            try:
                self.server.close()
            except OSError:
                pass
        if self._accept_greenlet is not None:
            self._accept_greenlet.kill(timeout=timeout)
        self.calls.join(timeout=timeout)
        self.calls.kill(timeout=timeout)
