"""Wall-clock timing for the benchmark scripts (benchmarks/ print tables; nothing here asserts)."""
from __future__ import annotations

import time
from typing import Callable, Mapping


def interleaved_times(fns: Mapping[str, Callable[[], object]], repeat: int, warmup: int) -> dict[str, list[float]]:
    """Wall times (ms) of each callable after ``warmup`` runs each, run interleaved: round r runs
    them all in a rotating order, so that load from elsewhere on the machine hits every column alike."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times
