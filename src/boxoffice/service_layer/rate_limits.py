"""Token buckets: a steady rate per key with a burst allowance, kept in memory by each gateway process."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBuckets:
    PRUNE_EVERY = 4096

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._calls = 0

    def take(self, key: str) -> float | None:
        """Spends one token of the key's bucket: None if there was one, else the seconds until there is."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        self._calls += 1
        if self._calls % self.PRUNE_EVERY == 0:
            self._prune(now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forgets keys whose bucket has refilled: they are as good as new."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}

    def __len__(self) -> int:
        return len(self._buckets)
