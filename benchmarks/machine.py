"""What a benchmark says of the machine it ran on: the header line (logical, usable and
physical cores, the load before the run) and the peak load while a measurement ran.

A 16-vCPU machine may have 8 physical cores, which bounds any speedup from more workers; a
load average above the cores means the run oversubscribed them (the scale goal: at most 1.25x
the cores). Used by ``backends.py`` and ``sync_throughput.py``."""

from __future__ import annotations

import os
import platform
import threading

from a3c_jax import _xla


def physical_cores() -> int | None:
    """Physical cores: psutil's count where it is installed, else the distinct (package,
    core) pairs of /proc/cpuinfo; None where neither tells."""
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        pass
    try:
        pairs, package = set(), None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    package = value.strip()
                elif key.strip() == "core id":
                    pairs.add((package, value.strip()))
        return len(pairs) or None
    except OSError:
        return None


def describe() -> str:
    """``host: cores logical L (usable U) physical P, load average before a b c``."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()}: cores logical {os.cpu_count()} (usable {_xla.host_cores({})}) "
            f"physical {physical_cores() or '?'}, load average before {load}")


class LoadPeak:
    """The highest one-minute load average seen while the ``with`` block ran, sampled every
    ``every_s`` seconds by a daemon thread (``peak``; at least the value at entry and exit)."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.peak = every_s, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        self.peak = max(self.peak, os.getloadavg()[0])

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> "LoadPeak":
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
