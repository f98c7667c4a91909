"""Clips rendered in worker processes, one batch ahead of the trainer.

On a GPU the tiny model's training step takes less time than rendering its batch of procedural
clips in one process (`data.workers` in a config; scripts/gpu_train_default.sh). Sources are
deterministic in the index, so rendering ahead never changes what a step sees: a guess that
misses costs only time.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from .clip import Clip, ClipSource


class ParallelSource:
    """A `ClipSource` whose clips come from `workers` processes. After a batch of indices it
    starts rendering the batch `stride` indices further on (the trainer's next micro-batch)."""

    def __init__(self, source: ClipSource, workers: int, stride: int):
        if workers < 1 or stride < 1:
            raise ValueError("workers and stride must be >= 1")
        self.source, self.workers, self.stride = source, workers, stride
        self._pool: ProcessPoolExecutor | None = None
        self._ahead: dict[int, Future] = {}

    def _submit(self, index: int) -> Future:
        if self._pool is None:
            # fork: workers render with NumPy and Pillow only and never touch the parent's GPU.
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool.submit(self.source.clip, index)

    def clip(self, index: int) -> Clip:
        return self.clips([index])[0]

    def clips(self, indices: list[int]) -> list[Clip]:
        futures = [self._ahead.pop(i, None) or self._submit(i) for i in indices]
        for stale in self._ahead.values():  # a jump (resume, another rank's order): drop guesses
            stale.cancel()
        self._ahead = {i + self.stride: self._submit(i + self.stride) for i in indices}
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead = {}


def render_clips(source: ClipSource, indices: list[int]) -> list[Clip]:
    """The clips at `indices`: in parallel where the source can, else one by one."""
    if isinstance(source, ParallelSource):
        return source.clips(indices)
    return [source.clip(i) for i in indices]
