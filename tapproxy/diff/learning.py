"""Learning a capture's noise while the diff reads it, not in a pass of its own.

`NoiseModel.learn` pulls exchanges from an iterable; the diff reads two captures in
step and has each exchange in hand once. A thread per capture runs `learn` over the
exchanges handed to it in batches (a bounded queue: memory stays flat), so each
capture is decoded once, not once to learn and once to compare.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from tapproxy.capture.model import Exchange

__all__ = ["NoiseLearner"]

_BATCH = 512
# Per capture, how many response fields the learner keeps fingerprints of (its oldest
# requests forgotten past that): the diff's memory stays flat in capture size (the
# model's default, 200,000, grew a 100,000-exchange diff by ~80 MiB). A request
# repeated within the last ~10,000 exchanges or so is still compared with its previous.
_FINGERPRINTS = 50_000


class NoiseLearner:
    """Push exchanges with `add`; `model()` ends the stream and returns what was learned."""

    def __init__(self) -> None:
        self._queue: queue.Queue[list[Exchange] | None] = queue.Queue(maxsize=8)
        self._batch: list[Exchange] = []
        self._result = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._learn, name="noise-learner",
                                        daemon=True)
        self._thread.start()

    def _learn(self) -> None:
        from tapproxy.noise import NoiseModel

        try:
            self._result = NoiseModel.learn(self._pulled(), max_fingerprints=_FINGERPRINTS)
        except BaseException as e:  # handed to the caller of model()
            self._error = e
        finally:
            self._drain()

    def _pulled(self) -> Iterator[Exchange]:
        while (batch := self._queue.get()) is not None:
            yield from batch

    def _drain(self) -> None:
        """Take what is still queued, so that a learner that stopped early blocks no one."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _put(self, item: list[Exchange] | None) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def add(self, x: Exchange) -> None:
        self._batch.append(x)
        if len(self._batch) >= _BATCH:
            self._put(self._batch)
            self._batch = []

    def model(self):
        """The NoiseModel of every exchange added (re-raises what learning raised)."""
        if self._batch:
            self._put(self._batch)
            self._batch = []
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """End the stream without wanting the model (the diff failed)."""
        self._batch = []
        self._put(None)
        self._thread.join()
