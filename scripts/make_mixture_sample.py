"""Write sample_data/mixture/: small crops of the two pure time-lapse movies + a manifest.

T98G (Usiigaci, MIT) and C2C12 (Ker et al. 2018, Sci. Data 5:180237, CC-BY-4.0), both from
/work/shared/data/timelapse. Run from the repository root.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import tifffile

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "timelapse"
OUT = Path(__file__).resolve().parents[1] / "sample_data" / "mixture"
FRAMES, SIDE = 10, 192

MANIFEST = """path,proportion,class_a,class_b,composite_of,n,grid
t98g_crop.tif,0,T98G,C2C12,,,
c2c12_crop.tif,1,T98G,C2C12,,,
,,T98G,C2C12,1 2,160,2
"""


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    t98g = tifffile.imread(SHARED / "t98g_phase" / "t98g_phase.tif", key=range(FRAMES))
    c2c12 = tifffile.imread(SHARED / "c2c12_phase" / "c2c12_phase.tif")
    y, x = 160, 160  # a crop of T98G away from the border
    tifffile.imwrite(OUT / "t98g_crop.tif", t98g[:, y:y + SIDE, x:x + SIDE])
    tifffile.imwrite(OUT / "c2c12_crop.tif", c2c12[:FRAMES, :SIDE, :SIDE])
    shutil.copy(SHARED / "t98g_phase" / "LICENSE", OUT / "LICENSE_T98G_MIT.txt")
    (OUT / "ATTRIBUTION_C2C12.md").write_text(
        "c2c12_crop.tif: C2C12 myoblasts, phase contrast, a crop of the movie below.\n"
        "Ker, D.F.E. et al. (2018) Phase contrast time-lapse microscopy datasets with automated\n"
        "and manual cell tracking annotations. Sci. Data 5:180237. CC-BY-4.0.\n\n"
        "Original README:\n\n" + (SHARED / "c2c12_phase" / "README.md").read_text())
    (OUT / "manifest.csv").write_text(MANIFEST)
    return 0


if __name__ == "__main__":
    sys.exit(main())
