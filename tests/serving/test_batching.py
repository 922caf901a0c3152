"""Natural batching: concurrent jobs are processed together, a lone job at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serving.batching import NaturalBatcher


def test_concurrent_jobs_form_batches_and_keep_their_results():
    seen: list[list] = []
    gate = threading.Event()

    def process(jobs):
        if not seen:
            gate.wait(2)  # hold the first batch so the others queue up behind it
        seen.append(list(jobs))
        return [j * 10 for j in jobs]

    async def main():
        b = NaturalBatcher(process, size=lambda j: 1, max_items=3)
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*rest), b

    first, rest, b = asyncio.run(main())
    assert first == 0 and rest == [10, 20, 30, 40, 50]
    assert seen == [[0], [1, 2, 3], [4, 5]]  # queued jobs batched, capped at max_items
    assert (b.batches, b.jobs) == (3, 6)


def test_a_lone_job_does_not_wait_and_errors_reach_every_caller():
    def process(jobs):
        if "boom" in jobs:
            raise RuntimeError("batch failed")
        return [j.upper() for j in jobs]

    async def main():
        b = NaturalBatcher(process)
        start = time.perf_counter()
        alone = await b.submit("a")
        elapsed = time.perf_counter() - start
        with pytest.raises(RuntimeError, match="batch failed"):
            await b.submit("boom")
        return alone, elapsed, await b.submit("c")

    alone, elapsed, after = asyncio.run(main())
    assert alone == "A" and elapsed < 0.5 and after == "C"
