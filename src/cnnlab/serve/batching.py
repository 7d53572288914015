"""Dynamic batching: concurrent requests wait up to `max_wait_ms` for each other and go through the model as one
batch on one worker thread.

On a CPU a forward pass over 32 images costs far less than 32 passes over one (one call into the kernels, one
round of Python), so under concurrent load batching raises throughput; `max_batch=1` runs every request alone
(the baseline bench/serve_load.py compares against). The model runs on one thread only, so the adapter needs no
locking and torch keeps its intra-op threads for the batch. Requests that waited past their deadline are dropped
before the model sees them, and a full queue is refused (503) instead of growing without bound.

A batch waits only while more requests are on their way: the app marks each request `arriving` while its body is
read and decoded, and the first job of a batch runs at once when the queue is empty and nothing is arriving. So a
lone client pays no `max_wait_ms` (measured before this rule: p50 8.7 ms against 2.2 ms without batching, one
client on LeNet-5), and concurrent clients still fill batches.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import CnnlabError


class Overloaded(CnnlabError):
    """More items wait for the model than the server accepts (HTTP 503)."""


class RequestTimeout(CnnlabError):
    """The answer did not come within the request timeout (HTTP 504)."""


@dataclass
class _Job:
    item: Any
    options: tuple  # the request's answer options as sorted (name, value) pairs: jobs batch with equal ones
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    deadline: float
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()


class DynamicBatcher:
    """Collects jobs from the event loop, runs `predict(items, **options)` on batches in one thread."""

    def __init__(
        self,
        predict: Callable[..., list[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 2048,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._arriving = 0  # requests being read and decoded; changed on the event loop, read by the worker

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="cnnlab-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request whose items will be submitted soon: batches forming now wait for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    # -- the event loop's side ----------------------------------------------------------------------------------
    async def submit(self, item: Any, options: dict[str, Any], timeout: float) -> Any:
        """The answer for one item; Overloaded when the queue is full, RequestTimeout past `timeout` seconds."""
        answer = (await self.submit_many([item], options, timeout))[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def submit_many(self, items: list[Any], options: dict[str, Any], timeout: float) -> list[Any]:
        """Answers for several items (a /predict/batch request); an item's own failure is its exception object."""
        if self._queue.qsize() + len(items) > self.max_queue:
            raise Overloaded(f"the server is busy ({self._queue.qsize()} items queued); retry shortly")
        self.start()
        loop = asyncio.get_running_loop()
        deadline = time.perf_counter() + timeout
        key = tuple(sorted((name, value) for name, value in options.items() if value is not None))
        jobs = [_Job(item, key, loop.create_future(), loop, deadline) for item in items]
        for job in jobs:
            self._queue.put(job)
        try:
            done = await asyncio.wait_for(
                asyncio.gather(*(job.future for job in jobs), return_exceptions=True), timeout
            )
        except asyncio.TimeoutError:
            for job in jobs:
                job.future.cancel()
            raise RequestTimeout(f"no answer within the request timeout of {timeout:g} s") from None
        return list(done)

    # -- the worker thread ----------------------------------------------------------------------------------------
    def _next_batch(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        closes = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            if self._arriving <= 0 and self._queue.empty():
                break  # nobody else is on the way: waiting would only add latency
            remaining = closes - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(job)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            now = time.perf_counter()
            live = [job for job in batch if not job.future.cancelled() and job.deadline > now]
            for key in dict.fromkeys(job.options for job in live):  # one model call per options asked, in order
                self._run([job for job in live if job.options == key], dict(key))

    def _run(self, jobs: list[_Job], options: dict[str, Any]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(jobs))
        try:
            answers = self.predict([job.item for job in jobs], **options)
        except Exception as error:  # noqa: BLE001 - a failed batch fails its requests, never the server
            for job in jobs:
                _settle(job, error=error)
            return
        for job, answer in zip(jobs, answers):
            _settle(job, answer=answer)


def _settle(job: _Job, answer: Any = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(answer)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop closed (server shutting down): nobody waits for this answer any more
