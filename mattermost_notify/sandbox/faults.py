"""Fault injection: make the sandbox fail, drop connections or stall on purpose."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TypedDict, Unpack


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request: ``mode`` ``"status"`` (answer ``status`` without
    applying the request), ``"drop_before"`` (close the connection without applying it)
    or ``"drop_after"`` (apply it, then close the connection without an answer)."""

    mode: str
    status: int = 0


class Where(TypedDict, total=False):
    """The requests a fault applies to (every one when not given)."""

    path_prefix: str | None  # e.g. "/api/v4/posts"
    method: str | None  # e.g. "POST"


@dataclass
class _Rule:
    """A fault (``outcomes``) or a delay (``seconds``) for ``remaining`` more requests."""

    remaining: int | None  # None: until cleared
    outcomes: tuple[Fault, ...] = ()
    seconds: float = 0.0
    probability: float = 1.0
    rng: random.Random | None = None
    path_prefix: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.remaining == 0 or (self.method is not None and self.method.upper() != method):
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class Faults:
    """Faults to inject, shared by all request threads of one sandbox.

    Every method takes the keywords of :class:`Where` (``path_prefix``, ``method``)
    restricting the requests it applies to. Rules are consumed in the order they were
    added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def fail_next(self, n: int = 1, status: int = 503, **where: Unpack[Where]) -> None:
        """Answer the next ``n`` matching requests with ``status``, without applying them."""
        self._add(_Rule(n, (Fault("status", status),), **where))

    def fail_fraction(
        self,
        p: float,
        seed: int = 0,
        statuses: tuple[int, ...] | None = None,
        modes: tuple[str, ...] = (),
        **where: Unpack[Where],
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
        self._add(_Rule(None, outcomes, probability=p, rng=random.Random(seed), **where))

    def drop_before(self, n: int = 1, **where: Unpack[Where]) -> None:
        """Close the connection of the next ``n`` matching requests before applying them."""
        self._add(_Rule(n, (Fault("drop_before"),), **where))

    def drop_after(self, n: int = 1, **where: Unpack[Where]) -> None:
        """Apply the next ``n`` matching requests, then close the connection unanswered."""
        self._add(_Rule(n, (Fault("drop_after"),), **where))

    def delay(self, seconds: float, n: int | None = None, **where: Unpack[Where]) -> None:
        """Stall matching requests ``seconds`` while they are being applied.

        The request is stalled after it was accepted (for ``POST /posts``: after its
        ``pending_post_id`` was registered) and before its effect is committed.
        ``n=None`` stalls every matching request until :meth:`clear`.
        """
        self._add(_Rule(n, seconds=seconds, **where))

    def clear(self) -> None:
        """Remove every fault and delay."""
        with self._lock:
            self._rules.clear()

    @property
    def active(self) -> bool:
        return bool(self._rules)

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
                if not rule.outcomes or not rule.matches(method, path):
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
        total = 0.0
        with self._lock:
            for rule in self._rules:
                if rule.outcomes or not rule.matches(method, path):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                total += rule.seconds
        return total
