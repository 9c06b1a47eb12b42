"""benchmarks/machine.py: the machine a benchmark names in its header, and the load it saw."""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "machine", Path(__file__).resolve().parents[1] / "benchmarks" / "machine.py")
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)


def test_header_names_logical_usable_and_physical_cores_and_the_load():
    line = machine.describe()
    assert f"cores logical {os.cpu_count()}" in line and "load average before" in line
    assert f"(usable {len(os.sched_getaffinity(0))})" in line
    physical = machine.physical_cores()
    assert physical is None or 1 <= physical <= os.cpu_count()


def test_physical_cores_without_psutil_reads_proc_cpuinfo(monkeypatch):
    real = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.setattr(builtins, "__import__", no_psutil)
    got = machine.physical_cores()
    if os.path.exists("/proc/cpuinfo") and "core id" in open("/proc/cpuinfo").read():
        assert got is not None and 1 <= got <= os.cpu_count()
    else:
        assert got is None


def test_load_peak_is_at_least_what_was_seen_at_entry():
    with machine.LoadPeak(every_s=0.01) as load:
        entry = os.getloadavg()[0]
        sum(i * i for i in range(200_000))
    assert load.peak >= 0.0 and load.peak >= entry - 0.5
