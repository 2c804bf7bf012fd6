"""GCRA rate limiter with the semantics of ``throttled`` v2 as used by Mattermost."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one request against the limiter and the headers it implies."""

    limited: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until a retry can pass (only when limited)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if self.limited:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter:
    """``PerSec`` requests per second with bursts of ``MaxBurst``, keyed (by client address)."""

    def __init__(self, per_sec: float = 10.0, max_burst: int = 100) -> None:
        if per_sec <= 0 or max_burst < 0:
            raise ValueError("per_sec must be > 0 and max_burst >= 0")
        self.per_sec = per_sec
        self.max_burst = max_burst
        self._emission = 1.0 / per_sec
        self._tolerance = self._emission * (max_burst + 1)
        self._limit = max_burst + 1
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> RateDecision:
        """Count one request for ``key``."""
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + self._emission
            allow_at = new_tat - self._tolerance
            diff = now - allow_at
            if diff < 0:
                return RateDecision(True, self._limit, 0, tat - now, -diff)
            self._tat[key] = new_tat
            ttl = new_tat - now
            next_free = self._tolerance - ttl
            remaining = int(next_free / self._emission) if next_free > -self._emission else 0
            return RateDecision(False, self._limit, remaining, ttl, 0.0)
