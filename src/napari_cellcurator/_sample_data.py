"""npe2 sample data: small real data sets shipped in the repository's ``sample_data/``."""

from __future__ import annotations

from pathlib import Path

#: sample key → (task, folder under sample_data/)
SAMPLES = {
    "jurkat_small": ("celltype", "celltype/jurkat_small"),
    "chula_small": ("celltype", "celltype/chula_small"),
    "mixture": ("mixture", "mixture"),
    "cellness_sim": ("cellness", "cellness_sim"),
}


def sample_root() -> Path:
    """``sample_data/`` shipped inside the package (the repository's top-level
    ``sample_data`` links to it)."""
    return Path(__file__).resolve().parent / "sample_data"


def sample_path(key: str) -> Path:
    """Path of sample ``key``; a clear error when this installation lacks it."""
    task, rel = SAMPLES[key]
    path = sample_root() / rel
    if not path.exists():
        raise FileNotFoundError(f"sample data {key!r} not found at {path}; it ships with the "
                                "source repository (sample_data/)")
    return path


def _load(key: str) -> list[tuple]:
    from napari_cellcurator._reader import detect_task, read_layers

    path = sample_path(key)
    task = SAMPLES[key][0]
    if task == "mixture" and detect_task(path) != "mixture":  # its movies, as its manifest says
        manifests = sorted(path.glob("*.csv"))
        path = manifests[0] if manifests else path
    return read_layers(path, task)


def jurkat_small() -> list[tuple]:
    """Jurkat imaging-flow-cytometry crops, a few per cell-cycle class (BSD-3)."""
    return _load("jurkat_small")


def chula_small() -> list[tuple]:
    """Blood-smear images with per-cell class points (Chula RBC-12, MIT)."""
    return _load("chula_small")


def mixture() -> list[tuple]:
    """Phase-contrast time-lapse snippets of two cell types (mixture task)."""
    return _load("mixture")


def cellness_sim() -> list[tuple]:
    """A simulated calcium-imaging recording with ROI candidates (cellness task)."""
    return _load("cellness_sim")
