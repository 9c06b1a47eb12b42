"""SIGINT and SIGTERM during a run: the first stops training cleanly, a second exits at once.

Schedulers and ``kill`` send SIGTERM; a terminal sends SIGINT (Ctrl-C). While a run is in
progress ``RunSignals`` treats both alike. The first signal only records itself
(``received``); the drivers look at ``stop_requested`` at safe points (every tick of the
asynchronous supervisor, after every compiled call of the synchronous driver) and stop there:
workers are told to stop, their last records are gathered, the run directory is written and
marked interrupted. Nothing is raised at an arbitrary point, so no file write or cleanup is
ever cut short. A second signal calls ``on_second`` (best effort: it marks run.json) and exits
the process at once with status 128 + signal number (130 for SIGINT, 143 for SIGTERM);
worker processes notice that their parent is gone and exit by themselves
(``a3c_jax.drivers.asynchronous.backends.shared_memory.watch_parent``).

``Interrupted`` is the ``KeyboardInterrupt`` a driver raises at such a safe point, so every
driver's Ctrl-C path handles both signals. Handlers can only be installed from the main
thread; elsewhere (a run started from a worker thread) ``RunSignals`` installs nothing and
Python's default Ctrl-C behaviour stays. A driver that does not poll (``raise_first``) gets
the first signal as ``Interrupted`` wherever it is, like Python's own Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training was stopped by a signal; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int | None) -> int:
    """The conventional exit status of a run stopped by ``signum`` (None: Ctrl-C, 130)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)


def exit_code_of(name: str | None) -> int:
    """``exit_code`` of a signal given by name (``RunResult.extras["signal"]``)."""
    return exit_code(signal.Signals[name] if name else None)


def signal_name(signum: int | None) -> str | None:
    return None if signum is None else signal.Signals(signum).name


class RunSignals:
    """Signal handling for one run (see the module docstring); a context manager."""

    def __init__(self, on_second: Callable[[int], None] | None = None,
                 raise_first: bool = False):
        self.on_second, self.raise_first = on_second, raise_first
        self.received: int | None = None
        self._old: dict = {}

    @property
    def stop_requested(self) -> bool:
        return self.received is not None

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal has arrived (call it at a safe point)."""
        if self.received is not None:
            raise Interrupted(self.received)

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
            if self.raise_first:
                raise Interrupted(signum)
            return
        try:
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting now\n".encode())
            if self.on_second is not None:
                self.on_second(signum)
        finally:
            os._exit(exit_code(signum))

    def __enter__(self) -> "RunSignals":
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
