"""The library's threads leave the process's signals to the main thread.

A signal sent to a process (Ctrl-C in a terminal, ``kill``) is delivered to one of its
threads that does not block it, and Linux often picks one that is running at that
moment: a sender thread busy with a request. Python runs its handlers in the main
thread only, and only the thread that received a signal has its blocking call
interrupted. A Ctrl-C delivered to a thread of ours is therefore noted but not acted on
until the main thread wakes up by itself: a ``time.sleep(60)`` in a loop body ignores it
for a minute. So every thread this library starts blocks the asynchronous signals; the
kernel then hands them to the main thread (or to a thread of the user's).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ASYNC_SIGNALS", "signals_to_main_thread", "start_thread", "unblock_signals"]

#: The signals a process is sent from outside; not the ones a thread raises on itself
#: (SIGSEGV, SIGFPE, ...), which must stay deliverable to the thread that faulted.
ASYNC_SIGNALS: frozenset[signal.Signals] = frozenset(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGWINCH",
    )
    if hasattr(signal, name)
)


@contextmanager
def signals_to_main_thread() -> Iterator[None]:
    """Threads started inside block :data:`ASYNC_SIGNALS` from their first instruction
    (a new thread inherits the mask of the thread that starts it). A signal arriving
    meanwhile waits, and is handled when the mask is put back."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no per-thread signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, the thread blocking :data:`ASYNC_SIGNALS`."""
    with signals_to_main_thread():
        thread.start()


def unblock_signals() -> None:
    """Undo an inherited mask: a helper process started from one of our threads would
    otherwise ignore SIGTERM and Ctrl-C for its whole life."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, ASYNC_SIGNALS)
