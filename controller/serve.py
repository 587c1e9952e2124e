"""Serving the controller: gevent's WSGI server plus its housekeeping greenlet.

``dialer controller`` runs :func:`serve` in one process.  Production on
PostgreSQL: run several processes (or hosts) against one database, e.g. with
gunicorn's gevent workers (see docs/40-control-plane.md)::

    gunicorn -k gevent -w 4 --worker-connections 1000 -b 0.0.0.0:5000 'controller.serve:make_app()'

The process must be monkey-patched *before* psycopg is imported (psycopg picks
its gevent-friendly wait function at import time); ``dialer controller`` and
gunicorn's gevent worker both do that.
"""
from __future__ import annotations

import logging
import signal
from typing import Optional

import gevent
import gevent.event
import gevent.pool
from flask import Flask

from . import create_app
from .config import Config
from .services import distribution

logger = logging.getLogger(__name__)

#: seconds between housekeeping rounds (lease expiry, event outbox cleanup)
HOUSEKEEPING_INTERVAL_S = 15.0
#: POST requests (the worker API's writes) handled at once; more wait their
#: turn.  Defaults to the database pool size (``DIALER_DB_POOL_SIZE``): beyond
#: it, extra greenlets only queue for a connection.  GETs are not limited:
#: event streams (SSE) stay open for minutes.
MAX_CONCURRENT_WRITES = None
#: largest body (bytes) sent in the same ``send`` as its response headers
ONE_SEND_MAX = 256 * 1024


#: POST paths that may hold at most a quarter of the request slots (:class:`WriteLimiter`)
BULK_PATHS = frozenset({"/api/v1/worker/results"})
#: the share of the request slots ``BULK_PATHS`` may hold (at least one slot)
BULK_SHARE = 4


class WriteLimiter:
    """WSGI middleware: at most ``limit`` POST requests inside the app at once,
    and result uploads (``BULK_PATHS``) in at most a quarter of those places.

    Result uploads are the bulkiest requests and the least urgent: a worker
    keeps its results in its contingency file until they are acknowledged,
    and after a controller outage every worker flushes them in batches of
    hundreds at once.  Leases, dial-checks and agent claims are on the path
    of a call.  So an upload first waits for one of the upload places, and
    the other slots are always left to the rest: under load a lease queues
    behind other leases, not behind uploads, and few uploads at once leave
    the database's CPUs to the leases.  Measured with the lease bench at
    5,000 records/s offered on 2 cores (docs/40-control-plane.md): lease p99
    about 1.3 s without this; 45-68 ms with half the places for uploads,
    24-38 ms with a quarter, at the same throughput; result acknowledgements
    wait instead (up to about a second at the machine's limit).
    """

    def __init__(self, app, limit: Optional[int] = MAX_CONCURRENT_WRITES,
                 bulk_paths: frozenset[str] = BULK_PATHS) -> None:
        from gevent.lock import BoundedSemaphore

        from .db import pool_size

        self.app = app
        self.limit = limit or pool_size()
        self.sem = BoundedSemaphore(self.limit)
        self.bulk = BoundedSemaphore(max(1, self.limit // BULK_SHARE))
        self.bulk_paths = bulk_paths

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        if environ.get("PATH_INFO") in self.bulk_paths:
            with self.bulk:
                return self._run(environ, start_response)
        return self._run(environ, start_response)

    def _run(self, environ, start_response):
        with self.sem:
            result = self.app(environ, start_response)
            # Drain inside the limit: API responses are small, already built.
            body = b"".join(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return [body]


def handler_class():
    """gevent's ``WSGIHandler`` that writes a small response in one ``send``
    and reads plain request headers without the e-mail parser
    (:mod:`controller.httpheaders`).

    pywsgi sends the status line and headers, then the body, in two writes.
    With ``TCP_NODELAY`` (:func:`listener`) that is two segments, and the
    client wakes up twice per response: on a worker API reply of a few KB the
    second send and wake-up cost as much CPU as parsing the request.  Headers
    are held back and go out with the first body chunk when that chunk is at
    most ``ONE_SEND_MAX`` bytes; larger or streamed bodies (SSE) are written
    as pywsgi writes them.
    """
    from gevent.pywsgi import WSGIHandler

    from . import httpheaders

    class _Handler(WSGIHandler):
        _hold = False
        _held: Optional[bytes] = None

        def MessageClass(self, *args):
            return httpheaders.parse(*args)  # plain headers without the e-mail parser

        def _write_with_headers(self, data):
            self._hold = bool(data) and len(data) <= ONE_SEND_MAX
            try:
                super()._write_with_headers(data)
            finally:
                self._hold = False
                self._held = None

        def _sendall(self, data):
            if self._hold:
                if self._held is None:
                    self._held = bytes(data)  # the headers: wait for the body
                    return
                data, self._held, self._hold = self._held + data, None, False
            super()._sendall(data)

    return _Handler


def make_app(config: Optional[dict] = None):
    """WSGI factory for gunicorn: ``'controller.serve:make_app()'``.

    Under gunicorn's gevent worker, queue top-ups run in background
    greenlets as in :func:`serve` (gunicorn stops the worker process), and
    the app is wrapped in the same :class:`WriteLimiter` (the Flask app is
    its ``app``).  Without gevent, the plain Flask app."""
    app = create_app(config or Config())
    from gevent import monkey

    tune_gc()
    if monkey.is_module_patched("socket"):
        distribution.set_refill_spawner(gevent.pool.Group().spawn, _refill_slots())
        return WriteLimiter(app)
    return app


def _refill_slots():
    """How many background top-ups use the database at once: the connections kept for them."""
    from gevent.lock import BoundedSemaphore

    from .db import BACKGROUND_CONNECTIONS

    return BoundedSemaphore(BACKGROUND_CONNECTIONS)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off what lives as long as the process.

    The controller's modules, app, SQL constructs and caches are some 100,000
    objects that every full collection walks: measured under the lease bench,
    a full collection took about 70 ms (every request in flight waits: it is
    one process) and the collector used about 7 % of the controller's CPU.
    ``gc.freeze()`` moves what exists now out of the collector's sight (called
    again once warmed up, when the lazily built statements exist), and a
    larger first-generation threshold lets a request's short-lived objects die
    by reference counting before a collection looks at them.  Cycles are
    still collected: only what was alive at a freeze is never re-examined.
    """
    import gc

    gc.collect()
    gc.set_threshold(GC_THRESHOLD_0, 10, 10)
    gc.freeze()


#: first-generation threshold of the collector (Python's default is 700)
GC_THRESHOLD_0 = 10_000


def housekeeping(app: Flask, stop: gevent.event.Event, interval: float = HOUSEKEEPING_INTERVAL_S) -> None:
    """Expire leases and trim the event outbox until ``stop`` is set; survives DB errors.
    After the first round (the server warmed up), freezes the collector's view again (:func:`tune_gc`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .services import distribution, events

    db = app.extensions["dialer_db"]
    rounds = 0
    warmed_up = False
    while not stop.wait(timeout=interval):
        if not warmed_up:
            tune_gc()
            warmed_up = True
        try:
            distribution.sweep_if_due(db)
            rounds += 1
            if rounds % 120 == 0:
                events.cleanup(db)
        except SQLAlchemyError:
            logger.exception("housekeeping failed; retrying in %.0f s", interval * 2)
            stop.wait(timeout=interval)


def listener(host: str, port: int, backlog: int = 1024):
    """The listening socket, with ``TCP_NODELAY`` (accepted sockets inherit it).

    pywsgi writes a response's headers and body in separate sends; with Nagle's
    algorithm on, the body waits for the client's delayed ACK of the headers
    (up to 40 ms on Linux) on a keep-alive connection.  gunicorn sets the same
    option on its sockets.
    """
    import socket

    import gevent.socket

    sock = gevent.socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def serve(app: Flask, host: str = "127.0.0.1", port: int = 5000, *, access_log: bool = False,
          ready: Optional[gevent.event.Event] = None, stop: Optional[gevent.event.Event] = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); then stop and join everything."""
    from gevent.pywsgi import WSGIServer

    stop = stop or gevent.event.Event()
    server = WSGIServer(listener(host, port), WriteLimiter(app), handler_class=handler_class(), log=logging.getLogger("controller.access") if access_log else None,
                        error_log=logging.getLogger("controller.wsgi"))
    tune_gc()
    server.start()
    group = gevent.pool.Group()
    refills = gevent.pool.Group()  # background queue top-ups (services.distribution)
    distribution.set_refill_spawner(refills.spawn, _refill_slots())
    keeper = group.spawn(housekeeping, app, stop)
    keeper.link_exception(lambda g: logger.error("housekeeping died: %s", g.exception))
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    logger.info("controller listening on http://%s:%s/", host, server.server_port)
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(timeout=3600):
            pass
    finally:
        server.stop(timeout=5)
        distribution.set_refill_spawner(None)
        refills.join(timeout=5)
        refills.kill(timeout=5)
        group.kill(timeout=5)
        app.extensions["dialer_db"].dispose()
        logger.info("controller stopped")
