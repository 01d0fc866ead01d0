"""Opening a folder of 100,000 crops: how long telling its format takes.

napari asks the plugin whether it reads a dropped folder on the GUI thread, and the CLI's
``--data`` detection looks at the folder for every layout it knows (class folders, split
folders, COCO, CVAT, VOC, LabelMe, QuPath, Cellpose masks, frames + points...). Each look
lists the folder. Measured in one run: ``detect_task`` and ``image_files`` on a flat folder of
100,000 crops (copies of one 32 × 32 TIFF), against one bare ``os.listdir`` of it — the
ratio says how many listings' worth of work detection costs. Target: detection under 1 s
(the old per-layout ``Path.iterdir`` + ``is_dir`` per entry + sorting ``Path`` objects took
6.4 s on this machine, 2026-12-07). Then reading them as napari's Load does (every crop in
memory, quality measured), in a fresh process: time and peak RSS against the crops' own
bytes (2026-12-07 before the quality pass was batched and a second copy of the crops
removed: 3.6 GB peak for 0.82 GB of crops).

    python bench/large_folder.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from common import RESULTS, show, write_result

TARGET_S = 1.0


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_folder(root: Path, n: int) -> Path:
    folder = root / "crops"
    folder.mkdir()
    first = folder / "cell_000000.tif"
    tifffile.imwrite(first, np.zeros((2, 32, 32), np.uint16))
    data = first.read_bytes()
    for i in range(1, n):  # copies (a file system allows ~65,000 hard links to one file)
        (folder / f"cell_{i:06d}.tif").write_bytes(data)
    return folder


READ = """
import resource, sys, time
from napari_cellcurator._qt.model_reading import read_items
t = time.perf_counter()
items = read_items(sys.argv[1], "celltype", None)
print(time.perf_counter() - t, items.arrays["image"].nbytes,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def read_in_fresh_process(folder: Path) -> tuple[float, int, int]:
    """(seconds, bytes of the crops, peak RSS bytes) of napari Load's read of ``folder``."""
    done = subprocess.run([sys.executable, "-c", READ, str(folder)], check=True,
                          capture_output=True, text=True)
    seconds, crops, peak = done.stdout.split()[-3:]
    return float(seconds), int(crops), int(peak)


def main(quick: bool = False, out: Path = RESULTS) -> dict:
    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.core.io.images import image_files

    n = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp), n)
        assert detect_task(folder) == "celltype"  # warm: imports, file cache
        listdir_s = best_of(lambda: os.listdir(folder))
        detect_s = best_of(lambda: detect_task(folder))
        files_s = best_of(lambda: image_files(folder))
        read_s, crops_bytes, peak = read_in_fresh_process(folder)
    result = {"n_files": n, "listdir_s": listdir_s, "detect_task_s": detect_s,
              "image_files_s": files_s, "detect_over_listdir": detect_s / listdir_s,
              "target_detect_s": TARGET_S, "load_read_s": read_s, "crops_bytes": crops_bytes,
              "load_peak_rss_bytes": peak, "peak_over_crops": peak / crops_bytes}
    print(f"flat folder of {n:,} crops")
    show("os.listdir", listdir_s, "s")
    show("image_files", files_s, "s")
    show("detect_task", detect_s, "s", f"< {TARGET_S:g} s", detect_s < TARGET_S)
    show("detect_task / os.listdir", detect_s / listdir_s, "x")
    show("Load's read (fresh process)", read_s, "s")
    show("its peak RSS", peak / 1e9, "GB")
    show("peak RSS / the crops' bytes", peak / crops_bytes, "x")
    write_result("large_folder", result, out)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10,000 files instead of 100,000")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    main(a.quick, a.out)
