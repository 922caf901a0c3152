"""Process tuning for a serving worker: heap settling after load, glibc's malloc thresholds, and
the one helper thread that lets a request's independent predictions use the second core.

None of this changes a result; it changes how long a request takes (benchmarks/bench_serving.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

def settle_heap() -> None:
    """Collect, then freeze every object alive now (modules, model, store) out of the garbage
    collector's sight. A request allocates thousands of small dicts and lists, which triggers
    full collections; without this each one walks the whole loaded heap (tens of ms).

    Also keep the request's large temporary arrays in the heap (keep_freed_memory)."""
    gc.collect()
    gc.freeze()
    keep_freed_memory()


# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Ask glibc to serve blocks up to `mmap_threshold` bytes from the heap and to keep up to
    `trim_threshold` freed bytes instead of giving them back to the kernel.

    A request's arrays of a few MB (the explainer's 1.5 million table look-ups for 500 rows,
    the model matrix) are otherwise mapped fresh and unmapped on every request, and touching
    fresh pages costs a page fault per 4 kB: measured here, the tabulated TreeSHAP of a
    500-item worklist took 12 ms instead of 6. The process keeps at most its peak request's
    memory. Returns False (and changes nothing) where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
                    and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        return False


_HELPER: ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()


def helper() -> ThreadPoolExecutor:
    """The process's one helper thread (see run_beside)."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paydelay-helper")
    return _HELPER


def _forget_helper() -> None:
    # a forked child (a server worker) has no copy of the parent's thread: it starts its own
    global _HELPER, _HELPER_LOCK
    _HELPER, _HELPER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def run_beside(tasks: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Results of independent tasks, run by this thread and the helper thread together, each
    taking the next task as soon as it is free (tasks in the order given; put long ones first).

    A request is scored on one thread (the service's batch thread), which leaves the second core
    of this 2-core machine idle; the boosters' predictions and the explainer are independent
    and release the GIL (LightGBM's C calls, numpy's large array operations), so they overlap.
    Measured on an idle machine: a 500-item re-rank 36 ms instead of 41 with the compact models;
    when the other core is busy it costs under a millisecond. Which thread runs a task changes
    nothing in its result. The helper is shared: when it is busy with another batch, this
    thread simply runs every task itself.
    """
    queue = deque(tasks.items())
    results: dict[str, object] = {}

    def drain() -> None:
        while True:
            try:
                name, task = queue.popleft()
            except IndexError:
                return
            results[name] = task()

    future = helper().submit(drain)
    try:
        drain()
    finally:
        if not future.cancel():  # started: wait for the task it took (and its error)
            future.result()
    return results
