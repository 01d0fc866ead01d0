"""The occlusion benchmark runs end to end (quick configuration); timings are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_occlusion_benchmark_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "occlusion.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads((tmp_path / "occlusion.json").read_text())
    assert res["occluded_copies"] == 15 * 15 and res["crop_size"] == 64
    assert res["seconds_per_crop"] > 0 and res["cpu_seconds_per_crop"] > 0
    # the fast path computes the same map as plain forward passes
    assert res["max_abs_diff_incremental_vs_plain"] < 1e-5
    assert "target < 1 s" in proc.stdout
