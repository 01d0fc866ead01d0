"""Write manifests of the full shared T98G / C2C12 movies for the mixture measurements.

Spatial hold-out: training rows use the left two thirds of each field of view, test rows the
right third (x ≥ 2W/3), so no test pixel was seen in training. Composites are drawn within each
side. A third manifest has C2C12 histogram-matched to T98G (skimage.exposure.match_histograms,
per frame) to check the model does not rely on acquisition/intensity differences.

Usage: python scripts/make_mixture_manifest.py [OUT_DIR]   (default: bench/mixture_manifests)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared" / "data" / "timelapse").resolve()
T98G = SHARED / "t98g_phase" / "t98g_phase.tif"
C2C12 = SHARED / "c2c12_phase" / "c2c12_phase.tif"
HEADER = "path,proportion,class_a,class_b,x0,x1,stride,max_snippets,composite_of,n,grid\n"


def _rows(t98g: str, c2c12: str, side: str, n_comp: int) -> str:
    # T98G 512 px wide, C2C12 234 px: cut each at 2/3 of its width
    tx, cx = 341, 156
    if side == "train":
        a = f"{t98g},0,T98G,C2C12,0,{tx},32,500,,,\n"
        b = f"{c2c12},1,T98G,C2C12,0,{cx},16,500,,,\n"
    else:
        a = f"{t98g},0,T98G,C2C12,{tx},512,32,300,,,\n"
        b = f"{c2c12},1,T98G,C2C12,{cx},234,16,300,,,\n"
    return a + b + f",,T98G,C2C12,,,,,1 2,{n_comp},2\n"


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    rel = {p: os.path.relpath(p, out) for p in (T98G, C2C12)}
    (out / "train.csv").write_text(HEADER + _rows(rel[T98G], rel[C2C12], "train", 600))
    (out / "test.csv").write_text(HEADER + _rows(rel[T98G], rel[C2C12], "test", 300))
    from skimage.exposure import match_histograms

    t98g = tifffile.imread(T98G)
    c2c12 = tifffile.imread(C2C12).astype(np.float32)
    ref = t98g[: len(c2c12)].astype(np.float32)
    matched = np.stack([match_histograms(f, r) for f, r in zip(c2c12, ref, strict=True)])
    tifffile.imwrite(out / "c2c12_matched_to_t98g.tif", matched.astype(np.uint16))
    (out / "test_histmatched.csv").write_text(
        HEADER + _rows(rel[T98G], "c2c12_matched_to_t98g.tif", "test", 300))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bench" / "mixture_manifests"))
