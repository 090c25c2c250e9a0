"""The job queue on every request's path: hand-off to a waiting worker loop, bounds, timeouts, drains,
and no job lost when a loop is cancelled just as it was handed one; the HTTP side's wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from ts_notebook.backend.jobs import Job, JobQueue, release
from ts_notebook.backend.messages import Answer


def _job(loop: asyncio.AbstractEventLoop, n: int = 0) -> Job:
    return Job(f"r{n}", {"body": n}, {}, loop.create_future())


def test_a_waiting_loop_gets_the_job_first_and_jobs_keep_their_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = JobQueue(2)
        waiting: list[asyncio.Future[Job | None]] = []
        taker = asyncio.create_task(queue.take(None, waiting))
        await asyncio.sleep(0)
        first, second, third = _job(loop, 1), _job(loop, 2), _job(loop, 3)
        queue.put_nowait(first)  # handed over: it does not count against the bound
        queue.put_nowait(second)
        queue.put_nowait(third)
        assert await taker is first
        assert queue.qsize() == 2 and not waiting
        with pytest.raises(asyncio.QueueFull):
            queue.put_nowait(_job(loop, 4))
        assert await queue.take(None, waiting) is second
        assert queue.get_nowait() is third
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()

    asyncio.run(main())


def test_take_times_out_and_a_drain_wakes_the_loop_empty_handed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = JobQueue(4)
        waiting: list[asyncio.Future[Job | None]] = []
        assert await queue.take(0.01, waiting) is None
        taker = asyncio.create_task(queue.take(None, waiting))
        await asyncio.sleep(0)
        release(waiting)
        assert await taker is None
        job = _job(loop)
        queue.put_nowait(job)  # no stale waiter swallows it
        assert queue.qsize() == 1 and queue.get_nowait() is job

    asyncio.run(main())


def test_a_loop_cancelled_right_after_the_hand_off_gives_the_job_back() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = JobQueue(4)
        waiting: list[asyncio.Future[Job | None]] = []
        taker = asyncio.create_task(queue.take(None, waiting))
        await asyncio.sleep(0)
        job = _job(loop)
        queue.put_nowait(job)
        taker.cancel()  # before the loop ran with the job it was handed
        with pytest.raises(asyncio.CancelledError):
            await taker
        assert queue.get_nowait() is job

    asyncio.run(main())


def test_the_http_side_wakes_for_each_chunk_and_for_the_answer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        job = _job(loop)
        waiter = asyncio.create_task(job.changed())
        await asyncio.sleep(0)
        job.add_chunk(b"part", "text/plain")
        await waiter
        assert list(job.chunks) == [(b"part", "text/plain")]
        job.chunks.clear()
        waiter = asyncio.create_task(job.changed())
        await asyncio.sleep(0)
        job.future.set_result(Answer())
        await waiter
        job.add_chunk(b"late", "")  # after the answer: dropped
        assert not job.chunks

    asyncio.run(main())
