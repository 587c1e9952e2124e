"""psycopg's socket waits as plain gevent I/O watchers.

psycopg runs every statement as a generator that yields "wait until the
socket is readable/writable" and is resumed with what became ready.  Its
choice of wait function is made at import time: in a monkey-patched process
it falls back to ``wait_poll``, which builds a ``select.poll()`` object, a
timer for its 0.1 s wake-up interval and a set of watchers for every single
wait -- gevent's emulation of ``poll`` is general, not cheap.  A statement
waits one to three times; under the lease benchmark that emulation was
about a tenth of the controller's CPU.

:func:`wait_gevent` does the same job with one libev/libuv I/O watcher per
wait and reports the events that fired, which is what psycopg's own C
``wait_c`` does outside gevent.  :func:`install` puts it in place of
``psycopg.waiting.wait`` (looked up there at call time by every
``Connection.wait``); ``controller.db`` calls it when the ``select`` module is
monkey-patched, i.e. under ``dialer controller`` and gunicorn's gevent worker.
psycopg itself is imported here only on the error paths: this module must not
be what first imports it before monkey-patching.
"""
from __future__ import annotations

import os
import time
from typing import Any, Generator, Optional

from gevent.hub import Waiter, get_hub

#: psycopg's Wait.R / Wait.W / Wait.RW and Ready.R / Ready.W are the same bits
#: as libev's (and gevent's libuv loop's) READ = 1 / WRITE = 2
_RW = 3


def wait_gevent(gen: Generator[Any, Any, Any], fileno: int, interval: Optional[float] = 0.1,
                timeout: Optional[float] = None) -> Any:
    """Drive a psycopg generator to completion, waiting on the gevent hub.

    As psycopg's own wait functions do, it wakes up every ``interval``
    seconds when nothing happens, to notice a socket closed under it (a
    watcher on a closed descriptor never fires) and the ``timeout``, which
    raises psycopg's own wait-timeout error.
    """
    hub = get_hub()
    loop = hub.loop
    tick = interval if interval and interval > 0 else 1.0
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        state = next(gen)
        while True:
            wait_for = tick if deadline is None else max(0.0, min(tick, deadline - time.monotonic()))
            waiter = Waiter(hub)
            watcher = loop.io(fileno, state & _RW)
            timer = loop.timer(wait_for)
            watcher.start(waiter.switch, pass_events=True)
            timer.start(waiter.switch, 0)
            try:
                ready = waiter.get() & _RW
            finally:
                watcher.stop()
                watcher.close()
                timer.stop()
                timer.close()
            if not ready:
                _check_open(fileno)
                if deadline is not None and time.monotonic() >= deadline:
                    from psycopg import errors

                    raise errors._WaitTimeout("wait timeout expired")
            state = gen.send(ready)
    except StopIteration as done:
        return done.value


def _check_open(fileno: int) -> None:
    """Raise psycopg's OperationalError if the connection's socket was closed."""
    try:
        os.fstat(fileno)
    except OSError as err:
        from psycopg import errors

        raise errors.OperationalError("connection socket closed") from err


def install() -> bool:
    """Make psycopg wait through :func:`wait_gevent`; True if it was not yet so."""
    from psycopg import waiting

    if waiting.wait is wait_gevent:
        return False
    waiting.wait = wait_gevent
    return True


def wanted() -> bool:
    """Whether this process is gevent monkey-patched (then psycopg's own choice is ``wait_poll``)."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("select")
