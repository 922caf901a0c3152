"""The Dask cluster a stage runs on: a LocalCluster started here, or an existing one joined.

`dask_client(engine, say)` is a context manager: with `engine.scheduler_address` it connects to
that scheduler (and leaves the cluster running when done); without it, it starts a LocalCluster
of `engine.n_workers` processes, `engine.threads_per_worker` threads and
`engine.memory_limit_per_worker` each, and closes it at the end. Either way it says the
dashboard link first, so a long stage can be watched (task stream, memory per worker).

`gathered(futures, what, say)` waits for a stage's partition tasks and says how far it is as
each one finishes (a 10M-invoice stage runs for minutes); `worker_memory(client)` is each
worker's resident memory now and its peak since it started (`ru_maxrss`), for the benchmark.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
from distributed import Client, Future, LocalCluster, as_completed

from features.config.engine import EngineConfig


@contextmanager
def dask_client(engine: EngineConfig, say: Callable[[str], None] = print) -> Iterator[Client]:
    """A client of the engine's cluster (module docstring); its dashboard link is said first."""
    if engine.scheduler_address:
        client = Client(engine.scheduler_address)
        try:
            say(f"Dask: joined {engine.scheduler_address} ({_workers(client)}); "
                f"dashboard {client.dashboard_link}")
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=engine.n_workers, threads_per_worker=engine.threads_per_worker,
                           memory_limit=engine.memory_limit_per_worker, processes=True,
                           dashboard_address=engine.dashboard_address,
                           local_directory=engine.local_directory)
    client = Client(cluster)
    try:
        say(f"Dask: LocalCluster of {_workers(client)}; dashboard {client.dashboard_link}")
        yield client
    finally:
        client.close()
        cluster.close()


def _workers(client: Client) -> str:
    info = client.scheduler_info(n_workers=-1)["workers"]
    threads = sum(w.get("nthreads", 0) for w in info.values())
    memory = sum(w.get("memory_limit", 0) or 0 for w in info.values())
    return f"{len(info)} workers, {threads} threads, {memory / 2**30:.1f} GiB memory limit"


def gathered(futures: list[Future], what: str, say: Callable[[str], None] | None = None
             ) -> list:
    """The futures' results in their order; with `say`, one line as each finishes."""
    position = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    start = time.perf_counter()
    for done, future in enumerate(as_completed(futures), 1):
        results[position[future.key]] = future.result()
        if say is not None:
            say(f"{what}: {done}/{len(futures)} partitions done "
                f"({time.perf_counter() - start:.0f} s)")
    return results


def _own_memory() -> dict[str, int]:
    # ru_maxrss is in KiB on Linux: the process's peak since it started
    return {"rss": psutil.Process().memory_info().rss,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def worker_memory(client: Client) -> dict[str, dict[str, int]]:
    """{worker address: {"rss": bytes now, "peak": bytes at most since the worker started}}."""
    return client.run(_own_memory)


__all__ = ["dask_client", "gathered", "worker_memory"]
