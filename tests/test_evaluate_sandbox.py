"""The time-limited worker pool: a slow or crashing task costs that task, never the run."""

from __future__ import annotations

import os
import time

from cadvlm.sandbox import TimeLimitedPool


def test_timeouts_errors_and_crashes_are_isolated():
    with TimeLimitedPool(workers=2, timeout=1.0) as pool:
        t = time.perf_counter()
        out = {o.index: o for o in pool.run(time.sleep, [0.05, 30, 0.05, 0.05])}
        assert time.perf_counter() - t < 15  # the 30 s task was killed at its limit
        assert [out[i].status for i in range(4)] == ["ok", "timeout", "ok", "ok"]
        assert pool.restarts == 1

        out = {o.index: o for o in pool.run(int, ["7", "seven"])}
        assert out[0].status == "ok" and out[0].value == 7
        assert out[1].status == "error" and "ValueError" in out[1].error

        out = list(pool.run(os._exit, [3]))  # a native crash: the process just dies
        assert out[0].status == "crash" and "exit code 3" in out[0].error

        # the replaced workers serve the next run as usual
        assert sorted(o.value for o in pool.run(abs, [-1, -2, -3])) == [1, 2, 3]


def test_empty_input_and_more_workers_than_tasks():
    with TimeLimitedPool(workers=4, timeout=5.0) as pool:
        assert list(pool.run(abs, [])) == []
        assert [o.value for o in pool.run(abs, [-5])] == [5]


def test_args_are_taken_lazily_and_the_feeder_can_stop():
    taken = []
    done = []

    def feed():
        for i in range(100):
            if len(done) >= 5:  # decided from the outcomes seen so far
                return
            taken.append(i)
            yield i

    with TimeLimitedPool(workers=2, timeout=10.0) as pool:
        for o in pool.run(abs, feed()):
            assert o.status == "ok"
            done.append(o.index)
            # never more than `workers` tasks taken and not yet finished
            assert len(taken) - len(done) <= 2
        assert 5 <= len(taken) <= 5 + 2 and sorted(done) == list(range(len(taken)))


def test_abandoned_run_leaves_no_busy_worker_and_the_pool_usable():
    with TimeLimitedPool(workers=2, timeout=60.0) as pool:
        assert len(list(pool.run(abs, [1, 2]))) == 2  # both workers started
        # the 2 s task leaves the other worker ample time to report ready and take a 30 s one
        run = pool.run(time.sleep, iter([2.0, 30, 30, 30]))
        first = next(run)
        assert first.index == 0 and first.status == "ok"
        busy = [s.proc for s in pool._slots if s.task is not None]
        assert busy  # a 30 s task is running
        t = time.perf_counter()
        run.close()  # abandon: the busy workers are killed at once, not waited for
        assert time.perf_counter() - t < 10
        assert all(not p.is_alive() for p in busy)
        assert all(s.task is None for s in pool._slots)
        assert sorted(o.value for o in pool.run(abs, [-1, -2, -3])) == [1, 2, 3]
        procs = [s.proc for s in pool._slots]
    assert procs and all(not p.is_alive() for p in procs)  # closing the pool ends every worker
