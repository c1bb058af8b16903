"""The dynamic batcher on its own (no HTTP): grouping, limits, failures; and the serve command's
refusal of a folder that is not a trained model.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cadvlm.serve.batching import Batcher, GenerationFailed, QueueFull


class Recorder:
    def __init__(self, delay=0.05, fail=False):
        self.calls, self.delay, self.fail = [], delay, fail
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, images, prompt, budget, max_time):
        self.gate.wait(10)
        self.calls.append((len(images), prompt, budget))
        time.sleep(self.delay)
        if self.fail:
            raise MemoryError("out of memory")
        return [f"{prompt}:{im}" for im in images]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_calls_and_keep_their_answers():
    async def main():
        rec = Recorder()
        b = Batcher(rec, max_batch=4, max_wait_ms=50, queue_max=100)
        b.start()
        out = await asyncio.gather(*(b.submit(i, "p", 10) for i in range(10)))
        await b.stop()
        return rec, out

    rec, out = run(main())
    assert [g.answer for g in out] == [f"p:{i}" for i in range(10)]  # each request gets its own answer
    assert sum(n for n, _, _ in rec.calls) == 10 and max(n for n, _, _ in rec.calls) == 4
    assert len(rec.calls) == 3 and all(g.batch_size >= 2 for g in out)


def test_rows_of_one_call_share_prompt_and_budget():
    async def main():
        rec = Recorder()
        b = Batcher(rec, max_batch=8, max_wait_ms=50)
        b.start()
        out = await asyncio.gather(b.submit(1, "a", 10), b.submit(2, "b", 10), b.submit(3, "a", 10),
                                   b.submit(4, "a", 20))
        await b.stop()
        return rec, out

    rec, out = run(main())
    assert sorted(rec.calls) == [(1, "a", 20), (1, "b", 10), (2, "a", 10)]
    assert [g.answer for g in out] == ["a:1", "b:2", "a:3", "a:4"]


def test_queue_limit_and_failures():
    async def main():
        rec = Recorder()
        rec.gate.clear()  # the generator is stuck: requests pile up
        b = Batcher(rec, max_batch=1, max_wait_ms=0, queue_max=2)
        b.start()
        first = asyncio.ensure_future(b.submit(0, "p", 1))
        await asyncio.sleep(0.05)  # taken into a call that is blocked
        waiting = [asyncio.ensure_future(b.submit(i, "p", 1)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await b.submit(3, "p", 1)
        jobs_ok = asyncio.ensure_future(b.submit(4, "p", 1, bypass_limit=True))  # batch jobs are not refused
        rec.gate.set()
        got = await asyncio.gather(first, *waiting, jobs_ok)
        await b.stop()

        bad = Batcher(Recorder(fail=True), max_wait_ms=0)
        bad.start()
        with pytest.raises(GenerationFailed, match="MemoryError"):
            await bad.submit(0, "p", 1)
        ok_after = Batcher(Recorder(), max_wait_ms=0)
        ok_after.start()
        answer = await ok_after.submit(5, "p", 1)
        await bad.stop()
        await ok_after.stop()
        return got, answer

    got, answer = run(main())
    assert [g.answer for g in got] == ["p:0", "p:1", "p:2", "p:4"] and answer.answer == "p:5"


def test_time_limit_marks_the_batch():
    async def main():
        b = Batcher(Recorder(delay=0.2), max_wait_ms=0, timeout_s=0.1)
        b.start()
        g = await b.submit(0, "p", 1)
        await b.stop()
        return g

    assert run(main()).timed_out


def test_serve_refuses_a_folder_that_is_no_model(tmp_path, capsys):
    from cadvlm.cli import main

    assert main(["serve", "--model", str(tmp_path), "--port", "0"]) == 2
    assert "cadvlm_model.json" in capsys.readouterr().err
