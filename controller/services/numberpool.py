"""Parse chunks of raw numbers, in worker processes when the input is large.

Number validation is the loader's bottleneck (~30k numbers/s per core), so a
big file is parsed by a process pool over chunks.  Only the light layer,
:func:`controller.numbers.parse_number`, runs in the workers (no 100 MB
geocoder data per process); results come back **in submission order**, so the
parent makes every order-dependent decision (duplicates, DNC) exactly as a
single process would.  At most ``2 * workers + 2`` chunks are in flight, which
bounds memory whatever the file size.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from .. import numbers

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: a chunk of 5000 numbers takes well under a second; this only guards a hang
RESULT_TIMEOUT_S = 600

#: (e164, country, geographical) for a valid number, (None, reason, message) otherwise
ParseResult = tuple


def parse_chunk(raws: Sequence[str], default_region: Optional[str]) -> list[ParseResult]:
    """Runs in a worker process: plain tuples pickle small and fast."""
    out: list[ParseResult] = []
    append = out.append
    parse = numbers.parse_number
    for raw in raws:
        result = parse(raw, default_region)
        if result:
            append((result.e164, result.country, result.geographical))
        else:
            append((None, result.reason.value, result.message))
    return out


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def parse_in_order(
    chunks: Iterable[tuple[T, Sequence[str]]],
    default_region: Optional[str],
    workers: int = 1,
    func: Callable[[Any, Optional[str]], list] = parse_chunk,
) -> Iterator[tuple[T, list[ParseResult]]]:
    """For each ``(payload, raw_numbers)`` yield ``(payload, results)`` in input order.

    ``func(job, default_region)`` does the work (default :func:`parse_chunk`
    on a sequence of raw numbers); it must be a module-level function of a
    light module, as spawned workers import it.

    ``workers <= 1`` parses in this process (no start-up cost for small files).
    Worker processes are started with ``spawn``: no inherited database handles,
    gevent hubs or threads, whatever the parent holds.
    """
    if workers <= 1:
        for payload, raws in chunks:
            yield payload, func(raws, default_region)
        return
    ctx = multiprocessing.get_context("spawn")
    pending: collections.deque = collections.deque()
    limit = 2 * workers + 2
    executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    broken = False

    def finish(payload, raws, future):
        nonlocal broken
        if not broken:
            try:
                return future.result(timeout=RESULT_TIMEOUT_S)
            except BrokenProcessPool as err:
                # e.g. a script without the `if __name__ == "__main__":` guard
                # that spawn needs: slower, but the load still completes.
                logger.warning("parse worker processes failed (%s); parsing in this process", err)
                broken = True
        return func(raws, default_region)

    try:
        for payload, raws in chunks:
            if func is parse_chunk:
                raws = list(raws)
            future = None if broken else executor.submit(func, raws, default_region)
            pending.append((payload, raws, future))
            while len(pending) >= limit or (broken and pending):
                done = pending.popleft()
                yield done[0], finish(*done)
        while pending:
            done = pending.popleft()
            yield done[0], finish(*done)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
