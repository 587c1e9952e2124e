"""HTTP client of a remote center (SPEC R3, R4, R5, R8, R9), gevent-native.

Built on :mod:`esl_dialer.client` (stdlib ``http.client`` over gevent
sockets, timeouts and retries), so it cooperates with the outbound-socket
server whether or not the process is monkey-patched.

- :class:`RemoteCenter`: one remote center's API (proxies, tokens, look-ups,
  callbacks) and menu download with ETag revalidation and an offline copy.
- :class:`ProgressHub`: ONE server-sent-event stream per center carries the
  progress of every proxy this process has placed there (R5); when the stream
  cannot be opened it polls ``GET /ivr/proxies`` instead, and tries the stream
  again later.  Calls subscribe to their proxy id and get snapshots on a queue.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..esl import commands as cmds

import gevent
import gevent.event
import gevent.pool
import gevent.queue

from ..client import ApiError, ControllerClient, ControllerUnavailable, _Endpoint, _gevent_connection, parse_sse
from .menu import Menu, MenuError

logger = logging.getLogger(__name__)

__all__ = ["ApiError", "ControllerUnavailable", "RemoteCenter", "ProgressHub", "MenuUnavailable", "http_get_json"]


class MenuUnavailable(Exception):
    """Neither the remote center nor the local copy could provide the menu."""


@dataclasses.dataclass
class RemoteCenter:
    """A remote center: its controller URL, our key there, and how to reach it by voice."""

    name: str
    base_url: str
    api_key: str
    dial_string: str = "sofia/gateway/{center}/{skill}"  # {center} {skill} {proxy} placeholders
    timeout_s: float = 3.0
    retries: int = 1
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        self.client = ControllerClient(self.base_url, self.api_key, timeout=self.timeout_s, retries=self.retries)

    # -- proxies (R4, R9)

    def create_proxy(self, skill: str, caller_number: str | None, caller_name: str | None = None,
                     data: dict | None = None) -> dict:
        # Not idempotent: a lost reply must not place two proxies.
        return self.client.request("POST", "/api/v1/ivr/proxies", {
            "skill": skill, "caller_number": caller_number, "caller_name": caller_name, "data": data,
        }, idempotent=False)

    def get_proxy(self, proxy_id: str) -> dict:
        return self.client.request("GET", f"/api/v1/ivr/proxies/{proxy_id}")

    def list_proxies(self) -> list[dict]:
        return self.client.request("GET", "/api/v1/ivr/proxies")["proxies"]

    def cancel_proxy(self, proxy_id: str, reason: str = "caller_hangup") -> dict:
        return self.client.request("DELETE", f"/api/v1/ivr/proxies/{proxy_id}?reason={reason}")

    def issue_token(self, proxy_id: str) -> dict:
        return self.client.request("POST", f"/api/v1/ivr/proxies/{proxy_id}/token", {}, idempotent=False)

    def request_callback(self, campaign: str, number: str, name: str | None = None, note: str | None = None,
                         callback_at: str | None = None) -> dict:
        return self.client.request("POST", "/api/v1/ivr/callbacks", {
            "campaign": campaign, "number": number, "name": name, "note": note, "callback_at": callback_at,
        }, idempotent=False)

    def owns(self, url: str) -> bool:
        """Whether ``url`` is on this center's controller (same scheme, host and port)."""
        mine, other = urlsplit(self.base_url), urlsplit(url)
        return (mine.scheme, mine.hostname, mine.port) == (other.scheme, other.hostname, other.port)

    def dial_string_for(self, skill: str, proxy_id: str) -> str:
        """The endpoint for a skill; every value checked to be one plain dial token (CommandError)."""
        return cmds.dial_string(self.dial_string, center=self.name, skill=skill, proxy=proxy_id)

    # -- menus (R3)

    def _cache_paths(self, name: str) -> tuple[Path, Path] | None:
        if not self.cache_dir:
            return None
        base = Path(self.cache_dir) / self.name
        return base / f"{name}.json", base / f"{name}.etag"

    def fetch_menu(self, name: str) -> tuple[Menu, str]:
        """The menu ``name``: downloaded (or revalidated by ETag), else the cached copy.

        Returns ``(menu, source)`` with source ``downloaded``, ``not_modified`` or
        ``offline_copy``.  A downloaded menu is validated before it replaces the
        cached one, so a broken remote document never destroys a working copy.
        """
        paths = self._cache_paths(name)
        cached_doc, cached_etag = None, None
        if paths and paths[0].exists():
            try:
                cached_doc = json.loads(paths[0].read_text("utf-8"))
                cached_etag = paths[1].read_text("utf-8").strip() if paths[1].exists() else None
            except (OSError, ValueError) as err:
                logger.warning("menu cache %s unreadable: %s", paths[0], err)
        try:
            status, etag, body = self._get_with_etag(f"/api/v1/ivr/{name}", cached_etag if cached_doc else None)
        except (OSError, TimeoutError, http.client.HTTPException, gevent.Timeout) as err:
            if cached_doc is None:
                raise MenuUnavailable(f"remote {self.name} unreachable ({err}) and no cached copy of {name!r}")
            logger.warning("remote %s unreachable (%s): using cached menu %r", self.name, err, name)
            return Menu.from_dict(cached_doc), "offline_copy"
        if status == 304 and cached_doc is not None:
            return Menu.from_dict(cached_doc), "not_modified"
        if status != 200:
            if cached_doc is not None:
                logger.warning("remote %s answered %s for menu %r: using cached copy", self.name, status, name)
                return Menu.from_dict(cached_doc), "offline_copy"
            raise MenuUnavailable(f"remote {self.name} answered HTTP {status} for menu {name!r}")
        try:
            doc = json.loads(body)
            menu = Menu.from_dict(doc)
        except (ValueError, MenuError) as err:
            if cached_doc is not None:
                logger.error("remote %s sent a bad menu %r (%s): keeping cached copy", self.name, name, err)
                return Menu.from_dict(cached_doc), "offline_copy"
            raise MenuUnavailable(f"remote {self.name} sent a bad menu {name!r}: {err}") from None
        if paths:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            tmp = paths[0].with_suffix(".tmp")
            tmp.write_text(json.dumps(doc), "utf-8")
            os.replace(tmp, paths[0])  # atomic: a crash never leaves half a menu
            paths[1].write_text(etag or "", "utf-8")
        return menu, "downloaded"

    def _get_with_etag(self, path: str, etag: str | None) -> tuple[int, str | None, bytes]:
        ep = _Endpoint.parse(self.base_url)
        conn = _gevent_connection(ep, self.timeout_s)
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            with gevent.Timeout(self.timeout_s * 2, TimeoutError(f"GET {path} timed out")):
                conn.request("GET", ep.prefix + path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            return resp.status, resp.getheader("ETag"), body
        finally:
            conn.close()


def http_get_json(url: str, timeout_s: float, api_key: str | None = None) -> dict[str, Any]:
    """R8 look-up: GET an application server's JSON answer (any URL, bounded in time).

    ``api_key`` is sent only when the caller decided the URL belongs to a
    configured center (same origin): a menu cannot make us leak a key elsewhere.
    """
    parts = urlsplit(url)
    ep = _Endpoint.parse(f"{parts.scheme}://{parts.netloc}")
    conn = _gevent_connection(ep, timeout_s)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        with gevent.Timeout(timeout_s, TimeoutError(f"look-up {url} timed out")):
            headers = {"Accept": "application/json"}
            if api_key:
                headers["Authorization"] = f"Bearer {api_key}"
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read(1024 * 1024)
    finally:
        conn.close()
    if resp.status != 200:
        raise ControllerUnavailable(f"look-up {url}: HTTP {resp.status}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("look-up answer is not a JSON object")
    return data


class ProgressHub:
    """Progress of every proxy at one center, pushed (SSE) or polled (fallback).

    ``watch(proxy_id)`` returns a queue of snapshots (dicts) for that proxy;
    ``unwatch`` forgets it.  The hub's greenlet is owned by ``group`` and ends
    on :meth:`stop`.
    """

    def __init__(self, center: RemoteCenter, poll_s: float = 1.0, sse_retry_s: float = 10.0,
                 read_timeout_s: float = 45.0) -> None:
        self.center = center
        self.poll_s = poll_s
        self.sse_retry_s = sse_retry_s
        self.read_timeout_s = read_timeout_s
        self.mode = "idle"  # "sse" | "polling" | "idle"
        self._watchers: dict[str, gevent.queue.Queue] = {}
        self._stop = gevent.event.Event()
        self._wake = gevent.event.Event()
        self._group = gevent.pool.Group()

    def start(self) -> None:
        if not self._group:
            g = self._group.spawn(self._run)
            g.link_exception(lambda g: logger.error("progress hub %s died: %s", self.center.name, g.exception))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._group.kill(timeout=timeout)

    def watch(self, proxy_id: str) -> gevent.queue.Queue:
        q = self._watchers.setdefault(proxy_id, gevent.queue.Queue())
        self._wake.set()
        return q

    def unwatch(self, proxy_id: str) -> None:
        self._watchers.pop(proxy_id, None)

    def _deliver(self, snap: Any) -> None:
        if isinstance(snap, dict):
            q = self._watchers.get(str(snap.get("id")))
            if q is not None:
                q.put(snap)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._watchers:
                self.mode = "idle"
                self._wake.clear()
                self._wake.wait(1.0)
                continue
            try:
                self._stream()
            except ApiError as err:
                logger.warning("remote %s refused the progress stream: %s", self.center.name, err)
            except (ControllerUnavailable, OSError, TimeoutError, http.client.HTTPException) as err:
                logger.info("remote %s progress stream down (%s): polling", self.center.name, err)
            self._poll_for(self.sse_retry_s)

    def _stream(self) -> None:
        ep = _Endpoint.parse(self.center.base_url)
        conn = _gevent_connection(ep, self.center.timeout_s)
        try:
            conn.request("GET", ep.prefix + "/api/v1/ivr/events", headers={
                "Authorization": f"Bearer {self.center.api_key}", "Accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read(4096)
                if 400 <= resp.status < 500:
                    data = json.loads(body or b"{}") if body.startswith(b"{") else {}
                    raise ApiError(resp.status, str(data.get("error", "")), str(data.get("message", "")))
                raise ControllerUnavailable(f"progress stream: HTTP {resp.status}")
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout_s)
            self.mode = "sse"
            for event in parse_sse(resp):
                if self._stop.is_set() or not self._watchers:
                    return
                if event.event == "proxy":
                    self._deliver(event.data)
        finally:
            conn.close()

    def _poll_for(self, duration_s: float) -> None:
        """Fallback: poll every ``poll_s`` for ``duration_s``, then the stream is retried."""
        self.mode = "polling"
        deadline = gevent.get_hub().loop.now() + duration_s
        while not self._stop.is_set() and self._watchers and gevent.get_hub().loop.now() < deadline:
            try:
                live = {p["id"]: p for p in self.center.list_proxies()}
                for proxy_id in list(self._watchers):
                    snap = live.get(proxy_id)
                    if snap is None:  # ended: ask for its final state
                        try:
                            snap = self.center.get_proxy(proxy_id)
                        except ApiError as err:
                            if err.status != 404:
                                raise
                            snap = {"id": proxy_id, "state": "failed", "end_reason": "not_found"}
                    self._deliver(snap)
            except ApiError as err:
                logger.warning("remote %s polling refused: %s", self.center.name, err)
            except ControllerUnavailable as err:
                logger.info("remote %s polling failed: %s", self.center.name, err)
            self._stop.wait(self.poll_s)


@dataclasses.dataclass
class AcdSwitchClient:
    """This center's own leg acceptor talking to its controller (a ``switch`` key)."""

    base_url: str
    api_key: str
    timeout_s: float = 3.0
    retries: int = 2

    def __post_init__(self) -> None:
        self.client = ControllerClient(self.base_url, self.api_key, timeout=self.timeout_s, retries=self.retries)

    def accept_leg(self, token: str, leg_uuid: str) -> dict:
        return self.client.request("POST", "/api/v1/ivr/legs", {"token": token, "leg_uuid": leg_uuid},
                                   idempotent=False)

    def get_proxy(self, proxy_id: str) -> dict:
        return self.client.request("GET", f"/api/v1/ivr/proxies/{proxy_id}")

    def leg_connected(self, proxy_id: str) -> dict:
        return self.client.request("POST", f"/api/v1/ivr/legs/{proxy_id}/connected", {})

    def leg_ended(self, proxy_id: str, reason: str, failed: bool = False) -> dict:
        return self.client.request("POST", f"/api/v1/ivr/legs/{proxy_id}/ended",
                                   {"reason": reason, "failed": failed})
