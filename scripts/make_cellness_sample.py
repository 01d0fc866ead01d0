"""Write ``sample_data/cellness_sim``: one simulated recording as a Suite2p-like plane folder.

    python scripts/make_cellness_sample.py
"""

from __future__ import annotations

from pathlib import Path

from napari_cellcurator.core.data.simulate_calcium import save_suite2p_like, simulate_candidates

OUT = Path(__file__).resolve().parents[1] / "sample_data" / "cellness_sim"

README = """# cellness_sim — a simulated calcium recording (Suite2p-like plane folder)

Made by `scripts/make_cellness_sample.py` with
`napari_cellcurator.core.data.simulate_calcium` (seed {seed}): {n} ROI candidates extracted by
PCA/ICA from a simulated 96 × 96 × 300-frame two-photon movie (30 Hz, GCaMP-like kinetics,
neuropil, a dark blood vessel, active dendrites, overlapping somata, shot noise).

- `plane0/stat.npy, F.npy, Fneu.npy, ops.npy (meanImg, max_proj)`: Suite2p layout.
- `plane0/iscell.npy`: the simulation truth ({cells} cell, {notcells} not_cell), column 1 = 1/0.
- `truth.json`: the same labels and counts.

Entirely synthetic: no real data, free to redistribute with the package (BSD-3-Clause).
Try: `cellcurator predict --task cellness --data sample_data/cellness_sim/plane0 ...`
"""


def main(seed: int = 7) -> None:
    sim, rois = simulate_candidates(seed)
    save_suite2p_like(sim, rois, OUT)
    cells = sum(lab == "cell" for lab in rois.labels)
    (OUT / "README.md").write_text(README.format(seed=seed, n=len(rois.labels), cells=cells,
                                                 notcells=len(rois.labels) - cells))
    print(f"wrote {OUT}: {len(rois.labels)} candidates, {cells} cells")


if __name__ == "__main__":
    main()
