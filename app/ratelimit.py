"""Per-client request budgets for the routes anyone can write to (votes).

Votes are free text from whoever can reach the service; without a budget one client can fill the
votes database or drown the learned rankings. A sliding window per client (its address) keeps the
last `per_window` timestamps; the table of clients is bounded (least recently seen dropped first),
so the limiter itself cannot be made to grow without bound. One instance per app (app.state), never
module state: tests and workers each have their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque


class RateLimiter:
    def __init__(self, per_window: int, window_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.per_window, self.window_s, self.max_clients = per_window, window_s, max_clients
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """0 and the request is counted, or the whole seconds to wait before the client may try again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._seen.pop(client, None) or deque()
            while stamps and stamps[0] <= now - self.window_s:
                stamps.popleft()
            wait = 0
            if len(stamps) >= self.per_window:
                wait = max(1, math.ceil(stamps[0] + self.window_s - now))
            else:
                stamps.append(now)
            self._seen[client] = stamps
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)
            return wait
