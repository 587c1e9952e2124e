"""The remote center's side of R6: accept the bridged leg and put it through.

The remote switch's dialplan sends legs arriving from other centers to this
outbound-socket app (``freeswitch/dialplan/remote-center.xml``).  The leg must
carry the one-time token (SIP header ``X-Dialer-Token``, which sofia exposes as
``${sip_h_X-Dialer-Token}``; ``dialer_token`` when it comes over loopback).  A
leg with a wrong, used or expired token is hung up with ``CALL_REJECTED``
before it is even answered.  An accepted leg takes its proxy's place; it hears
music until the ACD reserves an operator for it, then is bridged to the
operator's dial string.  The controller hears of every step (connected, ended)
so operators are freed and service times feed the expected waits.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import gevent

from .remote_client import AcdSwitchClient, ApiError, ControllerUnavailable
from ..esl import commands as cmds
from .session import CallerGone, CommandTimeout, IvrSession

logger = logging.getLogger(__name__)

TOKEN_VARIABLES = ("variable_sip_h_X-Dialer-Token", "variable_dialer_token")


@dataclasses.dataclass
class AcceptorSettings:
    controller: AcdSwitchClient
    poll_s: float = 0.2
    linger_s: int = 5
    moh: str = "local_stream://moh"
    operator_timeout_s: int = 20  # originate timeout towards the operator's phone
    max_hold_s: float = 600.0  # a leg never waits longer than this for its operator
    command_timeout_s: float = 10.0
    on_call_end: Callable[["AcceptReport"], None] | None = None


@dataclasses.dataclass
class AcceptReport:
    uuid: str
    proxy_id: str | None = None
    outcome: str = "unknown"  # refused | connected | caller_hangup | operator_failed | error
    accepted_at: float | None = None
    operator: str | None = None
    connected_at: float | None = None
    ended_at: float | None = None


class LegAcceptor:
    def __init__(self, session: IvrSession, settings: AcceptorSettings) -> None:
        self.session = session
        self.settings = settings
        data = session.session_data or {}
        self.uuid = data.get("Unique-ID") or data.get("variable_uuid") or "?"
        self.token = next((data[k] for k in TOKEN_VARIABLES if data.get(k)), None)
        self.report = AcceptReport(uuid=self.uuid)
        self._ended_reported = False
        self._connected_greenlet: gevent.Greenlet | None = None

    def run(self) -> AcceptReport:
        s, cfg = self.session, self.settings
        moh = None
        try:
            s.send(cmds.MYEVENTS)
            s.send(cmds.linger(cfg.linger_s))
            try:
                snap = cfg.controller.accept_leg(self.token or "", self.uuid)
            except ApiError as err:
                logger.warning("leg %s refused: %s", self.uuid, err)
                self.report.outcome = "refused"
                s.execute("hangup", cmds.hangup_arg("CALL_REJECTED"), timeout=cfg.command_timeout_s)
                return self.report
            except ControllerUnavailable as err:
                logger.error("leg %s: controller unreachable: %s", self.uuid, err)
                self.report.outcome = "refused"
                s.execute("hangup", cmds.hangup_arg("NORMAL_TEMPORARY_FAILURE"), timeout=cfg.command_timeout_s)
                return self.report
            self.report.proxy_id, self.report.accepted_at = snap["id"], time.monotonic()
            s.execute("answer", timeout=cfg.command_timeout_s)
            deadline = time.monotonic() + cfg.max_hold_s
            while not (snap.get("state") == "offered" and snap.get("operator")):
                if snap.get("state") not in ("waiting", "offered"):
                    raise CallerGone() if s.gone.is_set() else RuntimeError(f"proxy {snap.get('state')}")
                if moh is None or moh.ready():
                    moh = s.start("playback", cmds.playback_arg(cfg.moh))
                if time.monotonic() > deadline:
                    raise RuntimeError("no operator in time")
                if s.gone.wait(cfg.poll_s):
                    raise CallerGone()
                snap = cfg.controller.get_proxy(self.report.proxy_id)
            if moh is not None and not s.stop(moh, self.uuid, 3.0):
                logger.warning("leg %s: music did not stop after uuid_break", self.uuid)
            operator = snap["operator"]
            self.report.operator = operator["name"]
            self._bridge_operator(operator["extension"])
        except CallerGone:
            if self.report.outcome == "unknown":
                # Hanging up after the operator answered ends a conversation that happened.
                self.report.outcome = "connected" if self.report.connected_at is not None else "caller_hangup"
        except (CommandTimeout, ControllerUnavailable, ApiError, RuntimeError) as err:
            logger.warning("leg %s: %s", self.uuid, err)
            self.report.outcome = "error"
        except Exception:  # noqa: BLE001 - never take the server down
            logger.exception("leg %s: acceptor failed", self.uuid)
            self.report.outcome = "error"
        finally:
            self._report_end()
            if not s.gone.is_set():
                try:
                    s.execute("hangup", "NORMAL_CLEARING", timeout=2.0)
                except (CallerGone, CommandTimeout):
                    pass
            self.report.ended_at = time.monotonic()
            if self.settings.on_call_end:
                try:
                    self.settings.on_call_end(self.report)
                except Exception:  # noqa: BLE001
                    logger.exception("leg %s: on_call_end hook failed", self.uuid)
        return self.report

    def _bridge_operator(self, extension: str) -> None:
        s, cfg = self.session, self.settings

        def on_bridge(_event) -> None:
            if self.report.connected_at is None:
                self.report.connected_at = time.monotonic()
                self._connected_greenlet = gevent.spawn(self._report_connected)

        s.register_handle("CHANNEL_BRIDGE", on_bridge)
        s.execute("set", cmds.set_arg("continue_on_fail", "true"), timeout=cfg.command_timeout_s)
        s.execute("set", cmds.set_arg("hangup_after_bridge", "true"), timeout=cfg.command_timeout_s)
        dial = cmds.bridge_dial_string(extension, {"originate_timeout": int(cfg.operator_timeout_s),
                                                   "ignore_early_media": "true"})
        done = s.execute("bridge", dial, timeout=4 * 3600.0)
        disposition = (done.get("variable_originate_disposition") or "").upper()
        answered = disposition in ("SUCCESS", "ANSWER") or bool(done.get("variable_bridge_hangup_cause")) \
            or self.report.connected_at is not None
        if answered:
            if self.report.connected_at is None:
                self.report.connected_at = time.monotonic()
                self._report_connected()
            self.report.outcome = "connected"
        else:
            self.report.outcome = "operator_failed"

    def _report_connected(self) -> None:
        try:
            self.settings.controller.leg_connected(self.report.proxy_id)
        except (ControllerUnavailable, ApiError) as err:
            logger.warning("leg %s: could not report connected: %s", self.uuid, err)

    def _report_end(self) -> None:
        if self._ended_reported or self.report.proxy_id is None:
            return
        self._ended_reported = True
        if self._connected_greenlet is not None:
            self._connected_greenlet.join(timeout=self.settings.command_timeout_s)
        failed = self.report.outcome in ("operator_failed", "error")
        try:
            self.settings.controller.leg_ended(self.report.proxy_id, self.report.outcome, failed=failed)
        except (ControllerUnavailable, ApiError) as err:
            logger.warning("leg %s: could not report the end: %s", self.uuid, err)
