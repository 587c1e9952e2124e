"""A scripted FreeSWITCH outbound-socket connection, for IVR tests and the benchmark.

It connects to the IVR server like FreeSWITCH's ``socket`` application does
and answers with frames of the shapes in ``b_outbound.jsonl`` (the connect
reply as one header block, ``command/reply`` with Reply-Text,
``text/event-plain`` CHANNEL_EXECUTE_COMPLETE carrying Application,
Application-UUID (= the sendmsg's Event-UUID) and the channel variables,
CHANNEL_HANGUP, and the two disconnect notices).  Everything it was asked to
do is kept in ``executed`` for assertions.  gevent sockets only: usable from
an unpatched test process.
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Callable
from urllib.parse import quote

import gevent
import gevent.event
import gevent.socket


def _plain_event(headers: dict[str, str]) -> bytes:
    body = "".join(f"{k}: {quote(str(v), safe='')}\n" for k, v in headers.items()) + "\n"
    raw = body.encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(raw) + raw


class FakeOutboundCall:
    """One call: ``FakeOutboundCall(port, digits={"dialer_menu_digits": "1"}).start()``.

    ``digits`` maps a play_and_get_digits variable to what the caller "presses";
    ``app_seconds`` how long each application takes; ``hangup_during`` the name of
    an application during which the caller hangs up.
    """

    def __init__(self, port: int, digits: dict[str, str] | None = None, app_seconds: float = 0.01,
                 hangup_during: str | None = None, caller: str = "15551230001",
                 bridge_result: Callable[[str], dict[str, str]] | None = None,
                 linger_s: float = 0.2) -> None:
        self.port = port
        self.digits = digits or {}
        self.app_seconds = app_seconds
        self.hangup_during = hangup_during
        self.caller = caller
        self.bridge_result = bridge_result
        self.linger_s = linger_s
        self.uuid = str(uuidlib.uuid4())
        self.executed: list[tuple[str, str]] = []
        self.api_commands: list[str] = []
        self.variables: dict[str, str] = {}
        self.ended = gevent.event.Event()
        self.hung_up = False
        self.greenlet: gevent.Greenlet | None = None
        self._sock = None
        self._running: dict[str, gevent.Greenlet] = {}

    def start(self) -> "FakeOutboundCall":
        self.greenlet = gevent.spawn(self._run)
        return self

    # -- wire

    def _send(self, data: bytes) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(data)
            except OSError:
                pass

    def _reply(self, text: str) -> None:
        self._send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def _event(self, name: str, **extra: str) -> None:
        headers = {"Event-Name": name, "Unique-ID": self.uuid, "Channel-Call-UUID": self.uuid,
                   "Caller-Caller-ID-Number": self.caller}
        headers.update({f"variable_{k}": v for k, v in self.variables.items()})
        headers.update(extra)
        self._send(_plain_event(headers))

    def _run(self) -> None:
        sock = gevent.socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self._sock = sock
        reader = sock.makefile("rb")
        try:
            while True:
                lines = []
                while True:
                    line = reader.readline()
                    if not line:
                        return
                    line = line.decode().rstrip("\n")
                    if line == "":
                        break
                    lines.append(line)
                if lines:
                    self._command(lines)
        except OSError:
            return
        finally:
            self.ended.set()
            try:
                sock.close()
            except OSError:
                pass

    def _command(self, lines: list[str]) -> None:
        cmd = lines[0]
        if cmd == "connect":
            data = (f"Event-Name: CHANNEL_DATA\nUnique-ID: {self.uuid}\nChannel-Call-UUID: {self.uuid}\n"
                    f"Caller-Caller-ID-Number: {self.caller}\nCaller-Destination-Number: 7000\n"
                    f"variable_uuid: {self.uuid}\nContent-Type: command/reply\nReply-Text: %2BOK%0A\n"
                    f"Socket-Mode: async\nControl: full\n\n")
            self._send(data.encode())
        elif cmd == "myevents":
            self._reply("+OK Events Enabled")
        elif cmd.startswith("linger"):
            self._reply(f"+OK will linger {cmd.split()[1] if ' ' in cmd else 600} seconds")
        elif cmd.startswith("api "):
            self.api_commands.append(cmd[4:])
            if cmd.startswith("api uuid_break"):
                for g in list(self._running.values()):
                    g.kill(block=False)
            body = b"+OK\n"
            self._send(b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body)
        elif cmd == "sendmsg":
            if self.hung_up:
                self._reply("-ERR invalid session id [%s]" % self.uuid)
                return
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            app, arg = headers.get("execute-app-name", ""), headers.get("execute-app-arg", "")
            self.executed.append((app, arg))
            self._reply("+OK")
            g = gevent.spawn(self._execute, app, arg, headers.get("Event-UUID", str(uuidlib.uuid4())))
            self._running[headers.get("Event-UUID", "")] = g
        elif cmd == "exit":
            self._reply("+OK bye")
            self._disconnect(final_only=True)
        else:
            self._reply("-ERR command not found")

    def _execute(self, app: str, arg: str, app_uuid: str) -> None:
        try:
            self._event("CHANNEL_EXECUTE", Application=app, **{"Application-Data": arg, "Application-UUID": app_uuid})
            extra: dict[str, str] = {}
            if app == "set" and "=" in arg:
                k, v = arg.split("=", 1)
                self.variables[k] = v
            elif app == "play_and_get_digits":
                var = arg.split()[7]
                if var in self.digits:
                    self.variables[var] = self.digits[var]
            elif app == "bridge" and self.bridge_result:
                self.variables.update(self.bridge_result(arg))
            elif app == "hangup":
                self.hangup()
                return
            if self.hangup_during == app:
                gevent.sleep(self.app_seconds)
                self.hangup()
                return
            if app == "playback" and arg.startswith("local_stream://"):
                gevent.sleep(3600)  # music plays until uuid_break
            else:
                gevent.sleep(self.app_seconds)
            self._complete(app, arg, app_uuid, extra)
        except gevent.GreenletExit:
            self._complete(app, arg, app_uuid, {})  # broken: completes at once, like FreeSWITCH
        finally:
            self._running.pop(app_uuid, None)

    def _complete(self, app: str, arg: str, app_uuid: str, extra: dict[str, str]) -> None:
        self._event("CHANNEL_EXECUTE_COMPLETE", Application=app,
                    **{"Application-Data": arg, "Application-UUID": app_uuid, "Application-Response": "_none_",
                       "variable_current_application": app}, **extra)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The caller hangs up: CHANNEL_HANGUP, linger notice, final notice after linger."""
        if self.hung_up:
            return
        self.hung_up = True
        self._event("CHANNEL_HANGUP", **{"Hangup-Cause": cause})
        for g in list(self._running.values()):
            if g is not gevent.getcurrent():
                g.kill(block=False)
        gevent.spawn(self._disconnect)

    def _disconnect(self, final_only: bool = False) -> None:
        if not final_only:
            self._send(f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {self.uuid}\n"
                       f"Content-Disposition: linger\nLinger-Time: 5\nContent-Length: 0\n\n".encode())
            gevent.sleep(self.linger_s)
        body = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        self._send(b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: " + self.uuid.encode()
                   + b"\nContent-Disposition: disconnect\nContent-Length: %d\n\n" % len(body) + body)
        gevent.sleep(0.05)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass

    def drop(self) -> None:
        """The switch goes away: the socket closes with no hang-up event or notice."""
        self.hung_up = True
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass

    def apps(self) -> list[str]:
        return [a for a, _ in self.executed]
