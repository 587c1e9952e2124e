"""HTTP client of the controller's worker API (/api/v1), gevent-native.

Why not ``requests``: it only cooperates with gevent after
``gevent.monkey.patch_all()``, and the test process must not be patched.  This
client uses the standard library's ``http.client`` with *gevent's* socket
factory injected (``HTTPConnection._create_connection``), so every connect,
send and read yields to the hub whether or not the process is monkey-patched.
No new dependency, and the same code runs in `dialer worker`, in tests and on
an agent's PC.

Every call has a timeout; idempotent calls (heartbeat, results, release,
dial-check, agents list, and lease, which carries a request_id the controller
recognises on a retry) are retried with exponential back-off; claim is not
idempotent and is retried only when the connection could not be made at all,
so a lost reply never claims twice.

Errors: :class:`ControllerUnavailable` (connect error, timeout, 5xx after the
retries: the worker switches to its contingency file, P10) and
:class:`ApiError` (the controller answered with a 4xx JSON error: the worker
sent something wrong, retrying will not help).
"""
from __future__ import annotations

import http.client
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlencode, urlsplit

import gevent
import gevent.event
import gevent.socket
import gevent.ssl

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 3
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0
SSE_READ_TIMEOUT_S = 45.0  # the controller sends `ping` well within this
MAX_SSE_LINE = 1024 * 1024  # DoS guard on one event line


class ControllerError(Exception):
    """Base of the client's errors."""


class ControllerUnavailable(ControllerError):
    """The controller could not be reached or failed (5xx) after the retries."""


class ApiError(ControllerError):
    """The controller refused the request with a JSON error (4xx)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: ``event`` name and JSON-decoded ``data``."""

    event: str
    data: Any
    id: str | None = None


@dataclass
class _Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, base_url: str) -> "_Endpoint":
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"controller URL must be http(s)://host[:port], got {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _gevent_connection(ep: _Endpoint, timeout: float) -> http.client.HTTPConnection:
    """An http.client connection whose socket is a gevent socket."""
    if ep.scheme == "https":
        # gevent.ssl.create_default_context() hands back the *stdlib* context when
        # the process is not monkey-patched, whose handshake blocks the whole hub;
        # gevent's own SSLContext makes the handshake cooperative.
        ctx = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_default_certs()
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            ep.host, ep.port, timeout=timeout, context=ctx
        )
    else:
        conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    conn._create_connection = gevent.socket.create_connection  # type: ignore[attr-defined]
    return conn


@dataclass
class ControllerClient:
    """Client of one controller for one worker (token = that worker's identity).

    ``base_url`` is the controller root (``http://127.0.0.1:5000``); the API
    prefix ``/api/v1`` is added here.
    """

    base_url: str
    token: str
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff_base: float = BACKOFF_BASE_S
    backoff_max: float = BACKOFF_MAX_S
    _ep: _Endpoint = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ep = _Endpoint.parse(self.base_url)
        if not self.token:
            raise ValueError("a worker token is required (dialer worker add ... prints it)")

    # -- transport -------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": "esl-dialer-worker",
        }
        if extra:
            h.update(extra)
        return h

    def _once(self, method: str, path: str, body: Any | None) -> tuple[int, Any]:
        """One HTTP exchange.  Raises ``ConnectionError``-ish/OSError on transport failure."""
        conn = _gevent_connection(self._ep, self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = self._headers({"Content-Type": "application/json"} if payload is not None else None)
            # gevent.Timeout bounds the whole exchange (socket timeouts bound each read only).
            with gevent.Timeout(self.timeout * 2, TimeoutError(f"{method} {path} timed out")):
                conn.request(method, self._ep.prefix + path, body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            status = resp.status
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = {"error": "bad_response", "message": raw[:200].decode("utf-8", "replace")}
        return status, data

    def _sleep_backoff(self, attempt: int) -> None:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        gevent.sleep(delay * (0.5 + random.random() / 2))  # jitter: workers do not retry in lockstep

    def request(self, method: str, path: str, body: Any | None = None, *, idempotent: bool = True) -> Any:
        """JSON request with retries; returns the decoded body of a 2xx answer."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            sent = False
            try:
                # A refused/failed connect happens before anything was sent.
                status, data = self._once(method, path, body)
                sent = True
            except (ConnectionRefusedError, gevent.socket.gaierror) as exc:
                last = exc
            except (OSError, TimeoutError, http.client.HTTPException) as exc:
                last = exc
                sent = True  # the request may have reached the controller
            else:
                if 200 <= status < 300:
                    return data
                if 400 <= status < 500:
                    data = data if isinstance(data, dict) else {}
                    raise ApiError(
                        status,
                        str(data.get("error", "http_%d" % status)),
                        str(data.get("message", "")),
                        data.get("field"),
                    )
                last = ControllerUnavailable(f"{method} {path}: HTTP {status}")
            if sent and not idempotent:
                break
            if attempt < self.retries:
                logger.debug("controller %s %s failed (%s), retry %d", method, path, last, attempt + 1)
                self._sleep_backoff(attempt)
        raise ControllerUnavailable(f"{method} {path} failed: {last}") from last

    # -- API ------------------------------------------------------------------------

    def heartbeat(self, agent_state: str, active_calls: int = 0) -> dict:
        """Liveness and the immediate state report of D8."""
        return self.request(
            "POST", "/api/v1/worker/heartbeat", {"agent_state": str(getattr(agent_state, "value", agent_state)), "active_calls": active_calls}
        )

    def lease(self, max_records: int, request_id: str | None = None) -> dict:
        """Lease up to ``max_records`` records (D1).

        Every call carries a ``request_id`` (a fresh UUID4 unless given), so
        it is retried like the idempotent calls: a retry after a timeout or a
        lost reply gets the records of the first grant back instead of new
        ones, and nothing stays leased to this worker unknown to it.
        """
        body = {"max": int(max_records), "request_id": request_id or uuid.uuid4().hex}
        return self.request("POST", "/api/v1/worker/lease", body, idempotent=True)

    def results(self, results: list[dict]) -> tuple[list[str], list[str]]:
        """Upload attempt results; idempotent on client_id, so always safe to replay (P10)."""
        data = self.request("POST", "/api/v1/worker/results", {"results": results})
        return list(data.get("accepted", [])), list(data.get("duplicates", []))

    def release(self, record_ids: list[int]) -> int:
        data = self.request("POST", "/api/v1/worker/release", {"record_ids": list(record_ids)})
        return int(data.get("released", 0))

    def dial_check(self, record_ids: list[int]) -> tuple[list[int], dict[int, str]]:
        """D9/X1 check right before dialing: (ok ids, {refused id: reason})."""
        data = self.request("POST", "/api/v1/worker/dial-check", {"record_ids": list(record_ids)})
        refused = {int(k): str(v) for k, v in (data.get("refused") or {}).items()}
        return [int(i) for i in data.get("ok", [])], refused

    def agents(self, state: str | None = None) -> list[dict]:
        q = "?" + urlencode({"state": state}) if state else ""
        data = self.request("GET", "/api/v1/agents" + q)
        if isinstance(data, dict):
            data = data.get("agents", [])
        return list(data or [])

    def claim(self, *, call_uuid: str, record_id: int, min_skill: int = 0, exclude: list[str] | None = None) -> dict | None:
        """Claim an idle agent for an overflow call (D7); None when none is idle (409)."""
        try:
            data = self.request(
                "POST",
                "/api/v1/agents/claim",
                {"min_skill": min_skill, "call_uuid": call_uuid, "record_id": record_id, "exclude": exclude or []},
                idempotent=False,
            )
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
        return data.get("agent") if isinstance(data, dict) else None

    # -- server-sent events --------------------------------------------------------

    def iter_events(self, read_timeout: float = SSE_READ_TIMEOUT_S, last_event_id: str | None = None) -> Iterator[SseEvent]:
        """One SSE connection to /worker/events; ends when the stream closes.

        ``last_event_id`` resumes after that event (the controller replays what
        was missed).  Raises ControllerUnavailable / ApiError when it cannot be opened.
        """
        conn = _gevent_connection(self._ep, self.timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            try:
                conn.request("GET", self._ep.prefix + "/api/v1/worker/events", headers=self._headers(headers))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise ControllerUnavailable(f"event stream: {exc}") from exc
            if resp.status != 200:
                raw = resp.read()
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = {}
                if 400 <= resp.status < 500:
                    raise ApiError(resp.status, str(data.get("error", "")), str(data.get("message", "")))
                raise ControllerUnavailable(f"event stream: HTTP {resp.status}")
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            yield from parse_sse(resp)
        finally:
            conn.close()

    def listen_events(
        self,
        handler: Callable[[SseEvent], None],
        *,
        stop: "gevent.event.Event",
        read_timeout: float = SSE_READ_TIMEOUT_S,
    ) -> None:
        """Run until ``stop`` is set: deliver events, reconnect with back-off on any failure."""
        attempt = 0
        last_id: str | None = None
        while not stop.is_set():
            try:
                for ev in self.iter_events(read_timeout=read_timeout, last_event_id=last_id):
                    attempt = 0
                    if ev.id:
                        last_id = ev.id
                    if stop.is_set():
                        return
                    try:
                        handler(ev)
                    except Exception:  # a bad handler must not kill the listener
                        logger.exception("event handler failed on %s", ev.event)
                logger.info("event stream closed by the controller; reconnecting")
            except ApiError as exc:
                logger.warning("event stream refused: %s", exc)
            except (ControllerUnavailable, OSError, TimeoutError, http.client.HTTPException) as exc:
                logger.info("event stream down: %s", exc)
            delay = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 10)))
            attempt += 1
            stop.wait(delay)


def parse_sse(stream) -> Iterator[SseEvent]:
    """Parse a text/event-stream (WHATWG rules, enough of them): yields complete events.

    ``stream`` has ``readline(limit)`` returning bytes.  Comment lines (``:``)
    are skipped; ``data`` lines are joined with newlines and JSON-decoded (kept
    as text when they are not JSON).
    """
    event, data_lines, ev_id = "message", [], None
    while True:
        line = stream.readline(MAX_SSE_LINE)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) >= MAX_SSE_LINE:
            raise ControllerUnavailable("event stream line too long")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text == "":
            if data_lines:
                raw = "\n".join(data_lines)
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw
                yield SseEvent(event, value, ev_id)
            event, data_lines = "message", []
            continue
        if text.startswith(":"):
            continue
        name, _, value_s = text.partition(":")
        if value_s.startswith(" "):
            value_s = value_s[1:]
        if name == "event":
            event = value_s or "message"
        elif name == "data":
            data_lines.append(value_s)
        elif name == "id":
            ev_id = value_s
