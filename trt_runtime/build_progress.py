"""dcn-build's progress while TensorRT builds: tqdm bars per top-level phase on a terminal (TensorRT's
IProgressMonitor), else throttled phase and step lines, else 'still building' heartbeats."""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

from dcn_base.cli import DEFAULT
from dcn_base.console import progress_enabled




def make_progress_monitor(trt, stream=sys.stderr, interval: float = 2.0):
    """A TensorRT IProgressMonitor: tqdm bars per top-level phase on a terminal, else phase and step
    lines (throttled); None if TensorRT has no IProgressMonitor."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    bars = progress_enabled(DEFAULT, stream)

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)
            self._steps: dict[str, int] = {}
            self._depth: dict[str, int] = {}
            self._bars: dict[str, Any] = {}
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            self._steps[phase_name] = num_steps
            if bars:
                if depth <= 1:
                    from tqdm import tqdm  # noqa: PLC0415  (optional: only when bars are drawn)

                    self._bars[phase_name] = tqdm(total=num_steps, desc=f"[dcn-build] {phase_name}", leave=False,
                                                  position=depth, file=stream, dynamic_ncols=True)
            elif depth <= 1:
                print(f"[dcn-build] {'  ' * depth}{phase_name} ({num_steps} steps)", file=stream, flush=True)

        def step_complete(self, phase_name, step):
            if bars:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
                return True
            now = time.monotonic()
            if now - self._last >= interval:
                self._last = now
                n = self._steps.get(phase_name, 0)
                print(f"[dcn-build]   {phase_name}: {step + 1}/{n}", file=stream, flush=True)
            return True

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()
            self._steps.pop(phase_name, None)
            self._depth.pop(phase_name, None)

    return _Monitor()


class Heartbeat:
    """Periodic 'still building' lines when TensorRT has no IProgressMonitor."""

    def __init__(self, every: float = 10.0, stream=sys.stderr):
        self.every, self.stream = every, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self):
        while not self._stop.wait(self.every):
            print(f"[dcn-build] still building ({time.monotonic() - self._t0:.0f} s)", file=self.stream, flush=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=1)
        return False
