"""Time Python's cyclic collector in `salesbot serve` (README, issue #16 sixth pass).

    PYTHONPATH=bench/gc_probe SALESBOT_GC_PROBE=/tmp/gc.txt salesbot serve …

Python imports `sitecustomize` at start-up from the path; this one times every collector pass of a
`serve` process through `gc.callbacks`, and appends one line when the process exits (SIGTERM included,
as `serve` stops cleanly): passes and seconds per generation, the process's CPU seconds, the thresholds.
Every other command runs untouched. Not production code: the callbacks cost two clock reads per pass.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time

if sys.argv[1:2] == ["serve"] and os.environ.get("SALESBOT_GC_PROBE"):
    _started = [0.0]
    _passes = [[0, 0.0] for _ in range(3)]

    def _time_pass(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        generation = _passes[info["generation"]]
        generation[0] += 1
        generation[1] += time.perf_counter() - _started[0]

    def _report() -> None:
        passes = " ".join(f"gen{i}: {n} passes {seconds * 1000:.0f} ms" for i, (n, seconds) in enumerate(_passes))
        line = f"pid {os.getpid()} cpu {time.process_time():.2f} s · {passes} · thresholds {gc.get_threshold()}"
        with open(os.environ["SALESBOT_GC_PROBE"], "a", encoding="utf-8") as out:
            out.write(line + "\n")

    gc.callbacks.append(_time_pass)
    atexit.register(_report)
