"""Failed-login throttling: a sliding window per user name and per client address.

In-process (each controller process counts its own failures): enough to turn
an online password guess from thousands per minute into a handful; a shared
limit across processes belongs in the reverse proxy.  Pure apart from a lock;
the clock is injectable.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque

#: failures per user name within the window before that name is refused
MAX_FAILURES = 5
#: failures per client address (higher: behind a proxy many people share one)
MAX_FAILURES_PER_ADDRESS = 30
WINDOW_S = 300.0
MAX_KEYS = 10_000  # bound memory under a spray of random user names


class LoginThrottle:
    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> Deque[float]:
        q = self._failures.get(key)
        if q is None:
            return collections.deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until a login may be tried again for any of ``keys`` (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, self.window_s - (now - q[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_KEYS:  # drop the oldest tenth (dicts keep insertion order)
                for key in list(self._failures)[: MAX_KEYS // 10]:
                    del self._failures[key]
            for key in keys:
                self._failures.setdefault(key, collections.deque()).append(now)

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
