"""benchmarks/soak.py: its verdict from samples (fast), and one short real soak of the thread
backend (slow: a run started, sampled, stopped with Ctrl-C, checked for what it left)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location(
    "soak", Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py")
soak = importlib.util.module_from_spec(_spec)
sys.modules["soak"] = soak   # its dataclass looks its module up
_spec.loader.exec_module(soak)


def samples(rss, fds=(10,) * 5, segments=(0,) * 5):
    return pd.DataFrame({"backend": "threads", "t_s": [0, 60, 120, 180, 240], "rss_mb": rss,
                         "fds": fds, "threads": 20, "processes": 1, "segments": segments})


def test_growth_is_measured_after_the_warm_up_and_judged_against_the_goals():
    flat = soak.growth(samples([5, 900, 1000, 1020, 1040]), warmup_s=120)
    assert flat["rss_mb_from"] == 1000 and flat["rss_growth_pct"] == pytest.approx(4.0)
    assert flat["verdict"] == "PASS"                       # the warm-up's 5 -> 900 not counted
    assert soak.growth(samples([5, 900, 1000, 1030, 1060]), 120)["verdict"] == "FAIL"  # 6 %
    assert soak.growth(samples([1000] * 5, fds=(10, 10, 10, 10, 11)), 120)["verdict"] == "FAIL"
    assert soak.growth(samples([1000] * 5, segments=(0, 6, 6, 6, 7)), 120)["verdict"] == "FAIL"
    with pytest.raises(ValueError, match="fewer than two samples"):
        soak.growth(samples([1000] * 5), warmup_s=200)


@pytest.mark.slow
def test_a_short_soak_samples_the_run_and_finds_nothing_left(tmp_path):
    rc = soak.main(["--backends", "threads", "--minutes", "0.6", "--every-s", "4",
                    "--warmup-min", "0.35", "--out", str(tmp_path)])
    got = pd.read_csv(tmp_path / "soak.csv")
    assert len(got) >= 5 and (got.rss_mb > 50).sum() >= 3 and (tmp_path / "soak.png").exists()
    table = (tmp_path / "soak.md").read_text()
    assert "| threads |" in table and "| 130 | 0 | 0 |" in table   # Ctrl-C; no process, no segment
    assert rc in (0, 1)    # the verdict on 10 s of samples is the machine's, not asserted
