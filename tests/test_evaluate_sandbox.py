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
