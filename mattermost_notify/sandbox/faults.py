"""Fault injection: make the sandbox fail, drop connections or stall on purpose."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

#: What a fault does to one request.
#: ``status``: answer with ``status`` without applying the request.
#: ``drop_before``: close the connection without applying the request.
#: ``drop_after``: apply the request, then close the connection without an answer.


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    mode: str
    status: int = 0


@dataclass
class _Rule:
    outcomes: tuple[Fault, ...]
    remaining: int | None  # None: unlimited
    probability: float = 1.0
    rng: random.Random | None = None
    path_prefix: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass
class _Delay:
    seconds: float
    remaining: int | None
    path_prefix: str | None
    method: str | None
    matched: list[int] = field(default_factory=list)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class Faults:
    """Faults to inject, shared by all request threads of one sandbox.

    Every method takes an optional ``path_prefix`` (e.g. ``"/api/v4/posts"``) and
    ``method`` (e.g. ``"POST"``) restricting the requests it applies to.
    Rules are consumed in the order they were added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._delays: list[_Delay] = []

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status``, without applying them."""
        self._add(_Rule((Fault("status", status),), n, path_prefix=path_prefix, method=method))

    def fail_fraction(
        self,
        p: float,
        seed: int = 0,
        statuses: tuple[int, ...] | None = None,
        modes: tuple[str, ...] = (),
        *,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Fail a seeded random fraction ``p`` of matching requests, until cleared.

        A failing request gets one of ``statuses`` or ``modes`` (``"drop_before"``,
        ``"drop_after"``), chosen by the same seeded generator. ``statuses``
        defaults to ``(503,)`` when no ``modes`` are given, else to none.
        """
        if statuses is None:
            statuses = () if modes else (503,)
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be between 0 and 1")
        for mode in modes:
            if mode not in ("drop_before", "drop_after"):
                raise ValueError(f"unknown fault mode {mode!r}")
        outcomes = tuple(Fault("status", s) for s in statuses) + tuple(Fault(m) for m in modes)
        if not outcomes:
            raise ValueError("give at least one status or mode")
        self._add(
            _Rule(outcomes, None, p, random.Random(seed), path_prefix=path_prefix, method=method)
        )

    def drop_before(
        self, n: int = 1, *, path_prefix: str | None = None, method: str | None = None
    ) -> None:
        """Close the connection of the next ``n`` matching requests before applying them."""
        self._add(_Rule((Fault("drop_before"),), n, path_prefix=path_prefix, method=method))

    def drop_after(
        self, n: int = 1, *, path_prefix: str | None = None, method: str | None = None
    ) -> None:
        """Apply the next ``n`` matching requests, then close the connection unanswered."""
        self._add(_Rule((Fault("drop_after"),), n, path_prefix=path_prefix, method=method))

    def delay(
        self,
        seconds: float,
        n: int | None = None,
        *,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Stall matching requests ``seconds`` while they are being applied.

        The request is stalled after it was accepted (for ``POST /posts``: after its
        ``pending_post_id`` was registered) and before its effect is committed.
        ``n=None`` stalls every matching request until :meth:`clear`.
        """
        with self._lock:
            self._delays.append(_Delay(seconds, n, path_prefix, method))

    def clear(self) -> None:
        """Remove every fault and delay."""
        with self._lock:
            self._rules.clear()
            self._delays.clear()

    @property
    def active(self) -> bool:
        return bool(self._rules or self._delays)

    # ---- used by the server -------------------------------------------
    def _add(self, rule: _Rule) -> None:
        if rule.remaining is not None and rule.remaining < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._rules.append(rule)

    def choose(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any (consumes counted rules)."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(method, path):
                    continue
                if rule.rng is not None:
                    if rule.rng.random() >= rule.probability:
                        continue
                    fault = rule.outcomes[rule.rng.randrange(len(rule.outcomes))]
                else:
                    fault = rule.outcomes[0]
                if rule.remaining is not None:
                    rule.remaining -= 1
                return fault
            self._rules = [r for r in self._rules if r.remaining != 0]
        return None

    def stall_seconds(self, method: str, path: str) -> float:
        """Total delay for this request (consumes counted delays)."""
        if not self._delays:
            return 0.0
        total = 0.0
        with self._lock:
            for item in self._delays:
                if item.remaining == 0 or not item.matches(method, path):
                    continue
                if item.remaining is not None:
                    item.remaining -= 1
                total += item.seconds
        return total
