"""IVR service configuration (TOML) and assembly: menu source, centers, hubs, server.

Example (``freeswitch/ivr/ivr.toml``)::

    [ivr]
    host = "127.0.0.1"
    port = 8084
    menu = "freeswitch/ivr/main.toml"        # or menu_url = "http://remote:5000/api/v1/ivr/main"
    announce_every_s = 30
    fallback = "voicemail"                    # voicemail | callback | hangup

    [centers.remote]
    url = "http://127.0.0.1:5001"
    api_key_env = "DIALER_REMOTE_KEY"         # or api_key = "..."
    dial_string = "sofia/gateway/remote-center/{skill}"
    cache_dir = "var/ivr-cache"
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import gevent
import gevent.event

from .app import IvrCall, IvrSettings
from .menu import Menu, MenuError, load_menu
from .remote_client import MenuUnavailable, ProgressHub, RemoteCenter
from .server import DEFAULT_HOST, DEFAULT_PORT, IvrServer

logger = logging.getLogger(__name__)

REMOTE_KEY_ENV = "DIALER_REMOTE_KEY"
SETTING_KEYS = {f.name for f in dataclasses.fields(IvrSettings)} - {"menu_provider", "centers", "hubs", "on_call_end"}


class IvrConfigError(ValueError):
    """The IVR configuration is wrong; the message says what to fix."""


class MenuSource:
    """The current menu: a local file, or a remote center's menu revalidated by ETag.

    A background greenlet refreshes the remote menu every ``refresh_s``; calls
    read :meth:`current` without waiting on the network, and keep working on
    the last good copy while the remote is down (R3).
    """

    def __init__(self, menu: Menu | None = None, center: RemoteCenter | None = None, name: str | None = None,
                 refresh_s: float = 60.0) -> None:
        self.center, self.name, self.refresh_s = center, name, refresh_s
        self._menu = menu
        self.last_source = "file" if menu else None
        self._stop = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        if center is not None:
            self.refresh()

    def refresh(self) -> None:
        if self.center is None:
            return
        try:
            self._menu, self.last_source = self.center.fetch_menu(self.name)
        except (MenuUnavailable, MenuError) as err:
            if self._menu is None:
                raise
            logger.warning("menu %s: refresh failed, keeping the current copy: %s", self.name, err)

    def start(self) -> None:
        if self.center is not None and self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except (MenuUnavailable, MenuError) as err:
                logger.warning("menu refresh failed: %s", err)

    def stop(self) -> None:
        self._stop.set()
        if self._greenlet is not None:
            self._greenlet.kill(timeout=2)

    def current(self) -> Menu:
        if self._menu is None:
            raise MenuUnavailable("no menu loaded")
        return self._menu


@dataclasses.dataclass
class IvrService:
    """Everything `dialer ivr` runs, owned in one place and stopped together."""

    server: IvrServer
    settings: IvrSettings
    menus: MenuSource
    hubs: dict[str, ProgressHub]

    def start(self) -> None:
        self.menus.start()
        for hub in self.hubs.values():
            hub.start()
        self.server.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        for hub in self.hubs.values():
            hub.stop()
        self.menus.stop()


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as err:
        raise IvrConfigError(f"cannot read IVR config {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise IvrConfigError(f"IVR config {path} is not valid TOML: {err}") from None


def build_centers(doc: Mapping[str, Any]) -> dict[str, RemoteCenter]:
    centers = {}
    for name, conf in (doc.get("centers") or {}).items():
        if not isinstance(conf, Mapping) or not conf.get("url"):
            raise IvrConfigError(f"[centers.{name}] needs url")
        key = conf.get("api_key") or os.environ.get(str(conf.get("api_key_env") or ""), "")
        if not key:
            raise IvrConfigError(f"[centers.{name}] needs api_key or api_key_env (an ACD peer key: "
                                 "`dialer acd peer-add` on that center)")
        try:
            centers[name] = RemoteCenter(
                name=name, base_url=str(conf["url"]), api_key=key,
                dial_string=str(conf.get("dial_string", "sofia/gateway/{center}/{skill}")),
                timeout_s=float(conf.get("timeout_s", 3.0)), cache_dir=conf.get("cache_dir"))
        except ValueError as err:
            raise IvrConfigError(f"[centers.{name}]: {err}") from None
    return centers


def build_service(doc: Mapping[str, Any], *, host: str | None = None, port: int | None = None,
                  menu_file: str | None = None, menu_url: str | None = None,
                  overrides: Mapping[str, Any] | None = None) -> IvrService:
    """Assemble the IVR from a config document (and command-line overrides)."""
    ivr = dict(doc.get("ivr") or {})
    centers = build_centers(doc)
    menu_file = menu_file or (None if menu_url else ivr.get("menu"))
    menu_url = menu_url or (None if menu_file else ivr.get("menu_url"))
    if menu_file:
        try:
            menus = MenuSource(load_menu(menu_file))
        except MenuError as err:
            raise IvrConfigError(str(err)) from None
    elif menu_url:
        parts = urlsplit(menu_url)
        marker = "/api/v1/ivr/"
        if marker not in parts.path:
            raise IvrConfigError(f"menu URL must look like http://host:port/api/v1/ivr/<name>, got {menu_url}")
        base = f"{parts.scheme}://{parts.netloc}{parts.path.split(marker)[0]}"
        name = parts.path.split(marker, 1)[1].strip("/")
        center = next((c for c in centers.values() if c.base_url.rstrip("/") == base.rstrip("/")), None)
        if center is None and os.environ.get(REMOTE_KEY_ENV) and "remote" not in centers:
            # `dialer ivr --menu-url URL` with no config: that center is "remote", key from the env
            center = centers["remote"] = RemoteCenter(name="remote", base_url=base,
                                                      api_key=os.environ[REMOTE_KEY_ENV])
        if center is None:
            raise IvrConfigError(f"no [centers.*] entry with url = {base!r} (its key is needed for the menu; "
                                 f"or set {REMOTE_KEY_ENV})")
        try:
            menus = MenuSource(center=center, name=name, refresh_s=float(ivr.get("menu_refresh_s", 60)))
        except (MenuUnavailable, MenuError) as err:
            raise IvrConfigError(str(err)) from None
    else:
        raise IvrConfigError("no menu: give --menu FILE or --menu-url URL (or [ivr] menu / menu_url)")
    missing = {c for c, _ in menus.current().remote_targets()} - set(centers)
    if missing:
        raise IvrConfigError(f"the menu sends callers to unknown center(s) {', '.join(sorted(missing))}: "
                             "add [centers.<name>] to the IVR config")
    values = {k: v for k, v in ivr.items() if k in SETTING_KEYS}
    values.update(overrides or {})
    if values.get("fallback", "voicemail") not in ("voicemail", "callback", "hangup"):
        raise IvrConfigError("fallback must be voicemail, callback or hangup")
    hubs = {name: ProgressHub(center, poll_s=float(ivr.get("poll_s", 1.0))) for name, center in centers.items()}
    settings = IvrSettings(menu_provider=menus.current, centers=centers, hubs=hubs, **values)
    server = IvrServer(lambda session: IvrCall(session, settings), host=host or ivr.get("host", DEFAULT_HOST),
                       port=int(port if port is not None else ivr.get("port", DEFAULT_PORT)),
                       max_connections=int(ivr.get("max_calls", 5000)))
    return IvrService(server=server, settings=settings, menus=menus, hubs=hubs)
