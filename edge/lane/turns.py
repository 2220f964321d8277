"""Lane events waiting for the lane worker, one queue per lane, taken in turns
(decisions D48): a lane with thousands of events queued holds up another lane's
next event by one turn, not by its whole queue. Each lane's own events keep their
order. Filled by paho's network thread, emptied by the lane worker.
"""

from __future__ import annotations

import collections
import threading
from typing import Any


class LaneTurns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[Any]] = {}
        self._turns: collections.deque[str] = collections.deque()  # lanes with events, next first

    def put(self, lane: str, item: Any) -> None:
        with self._lock:
            queue = self._queues.get(lane)
            if queue is None:
                queue = self._queues[lane] = collections.deque()
                self._turns.append(lane)
            queue.append(item)

    def take(self) -> Any | None:
        """The next lane's oldest event (that lane then goes to the back), None when none waits."""
        with self._lock:
            if not self._turns:
                return None
            lane = self._turns.popleft()
            queue = self._queues[lane]
            item = queue.popleft()
            if queue:
                self._turns.append(lane)
            else:
                del self._queues[lane]
            return item

    def __len__(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._turns)
