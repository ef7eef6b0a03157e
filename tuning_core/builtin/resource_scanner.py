"""The hf_resource_scanner tracker: the run's peak memory and time, written to one JSON file at the end.

fms-hf-tuning delegates this to the HFResourceScanner package; this is our own, dependency-free: peak
process memory from the kernel (ru_maxrss), peak GPU memory from torch's allocator, step times from the
trainer's events.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from transformers import TrainerCallback


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class ResourceScanner(TrainerCallback):
    def __init__(self, path: str, timings: dict | None = None):
        self.path = path
        self.timings = timings if timings is not None else {}  # the run's load/preprocessing times, filled live
        self._start = None
        self._step_start = None
        self.step_seconds: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_start is not None:
            self.step_seconds.append(time.perf_counter() - self._step_start)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self._start is None:
            return
        report = self.report(time.perf_counter() - self._start, state.global_step)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)

    def report(self, train_seconds: float, global_step: int) -> dict:
        import torch

        steps = self.step_seconds
        memory = {"process_peak_rss_bytes": peak_rss_bytes()}
        if torch.cuda.is_available():
            memory["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
            memory["cuda_peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        return {
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "peak_memory": memory,
            "time": {
                "train_seconds": train_seconds,
                "steps": len(steps),
                "global_step": global_step,
                "step_seconds_mean": sum(steps) / len(steps) if steps else None,
                "step_seconds_max": max(steps, default=None),
                **{k: float(v) for k, v in self.timings.items()},
            },
        }
