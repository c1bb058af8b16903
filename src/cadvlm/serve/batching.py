"""Dynamic batching: concurrent requests share one `generate()` call.

Why: decoding a small model is a long series of tiny matrix products whose cost barely grows
with the batch, so 16 pictures decoded together cost little more than one. Requests wait in a
queue; the first of a batch waits at most `max_wait_ms` for company, and while a batch is being
generated the next one fills up by itself, so under load batches are full with no added wait.
Rows of one call must share the prompt text and the token budget (`generate_code` takes one of
each), so a batch is the oldest request plus the waiting ones with the same (prompt, budget).

Generation runs in one dedicated thread (the model is not shared between threads); the event
loop only awaits futures. The queue is bounded: past `queue_max` waiting requests, `submit`
raises QueueFull and the route answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

# generate_fn(images, prompt, max_new_tokens, max_time_s) -> one answer per image
GenerateFn = Callable[[list, str, int, float], list]


class QueueFull(RuntimeError):
    """The generation queue is at its limit: come back later."""


class GenerationFailed(RuntimeError):
    """generate() raised (out of memory, a model bug): the message says what."""


@dataclass
class Generated:
    answer: str
    queue_ms: float  # waiting for a batch
    generate_ms: float  # the generate() call this request was part of
    batch_size: int
    timed_out: bool  # the call hit its time limit: unfinished answers were cut


@dataclass
class _Item:
    image: object
    key: tuple  # (prompt, max_new_tokens): what rows of one call must share
    future: asyncio.Future
    enqueued: float


class Batcher:
    def __init__(self, generate_fn: GenerateFn, max_batch: int = 16, max_wait_ms: float = 20.0,
                 queue_max: int = 64, timeout_s: float = 120.0, on_batch: Callable | None = None):
        self.generate_fn = generate_fn
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.queue_max = max(1, int(queue_max))
        self.timeout_s = float(timeout_s)
        self.on_batch = on_batch  # on_batch(size, seconds): metrics
        self._pending: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cadvlm-generate")
        self.batches = 0
        self.generating = 0  # requests in the generate() call now running

    @property
    def depth(self) -> int:
        """Requests waiting for a generate() call."""
        return len(self._pending)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cadvlm-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(GenerationFailed("the server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, image, prompt: str, max_new_tokens: int, bypass_limit: bool = False) -> Generated:
        """The answer for one picture; raises QueueFull when the queue is at its limit.

        `bypass_limit`: batch jobs, which bound their own number of requests in flight, are never
        turned away (interactive requests are).
        """
        if self._task is None:
            raise RuntimeError("the batcher is not started")
        if not bypass_limit and len(self._pending) >= self.queue_max:
            raise QueueFull(f"{len(self._pending)} requests are waiting for the model")
        item = _Item(image, (prompt, int(max_new_tokens)), asyncio.get_running_loop().create_future(),
                     time.perf_counter())
        self._pending.append(item)
        self._wakeup.set()
        return await item.future

    def _same_key(self, key) -> int:
        return sum(1 for it in self._pending if it.key == key)

    def _take(self) -> list[_Item]:
        """The oldest live request and up to max_batch - 1 waiting ones with the same key, in order."""
        while self._pending and self._pending[0].future.done():  # the client went away
            self._pending.popleft()
        if not self._pending:
            return []
        key = self._pending[0].key
        batch, rest = [], deque()
        for it in self._pending:
            if it.future.done():
                continue
            if it.key == key and len(batch) < self.max_batch:
                batch.append(it)
            else:
                rest.append(it)
        self._pending = rest
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            first = self._pending[0]
            while self._same_key(first.key) < self.max_batch:
                remaining = first.enqueued + self.max_wait - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            prompt, budget = batch[0].key
            start = time.perf_counter()
            self.generating = len(batch)
            try:
                answers = await loop.run_in_executor(self._executor, self.generate_fn,
                                                     [it.image for it in batch], prompt, budget, self.timeout_s)
                if len(answers) != len(batch):
                    raise GenerationFailed(f"generate returned {len(answers)} answers for {len(batch)} pictures")
            except Exception as exc:  # noqa: BLE001 - every request of the batch hears why
                err = exc if isinstance(exc, GenerationFailed) else GenerationFailed(f"{type(exc).__name__}: {exc}")
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            finally:
                self.generating = 0
            seconds = time.perf_counter() - start
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(batch), seconds)
            timed_out = seconds >= self.timeout_s
            for it, answer in zip(batch, answers):
                if not it.future.done():
                    it.future.set_result(Generated(str(answer), (start - it.enqueued) * 1000, seconds * 1000,
                                                   len(batch), timed_out))


def model_generate_fn(model, processor, code=None) -> GenerateFn:
    """The trained model as a GenerateFn: greedy `generate_code` (kept to valid programs of the
    model's language `code` when it is compact), stopped at the time limit.

    The limit goes through the model's generation config (`max_time`: transformers stops decoding
    when it is spent), so a runaway batch ends with cut answers instead of holding the queue.
    """
    from cadvlm.decode.generate import generate_code

    def generate(images, prompt, max_new_tokens, max_time):
        model.generation_config.max_time = float(max_time) if max_time else None
        return generate_code(model, processor, images, prompt, max_new_tokens, batch_size=len(images),
                             constrain=code)

    return generate
