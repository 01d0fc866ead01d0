"""Simulated two-photon calcium recordings with known truth, for pretraining and tests.

A recording = somata (soft disks, some with a dark nucleus, some overlapping) with GCaMP-like
kinetics (fast rise, 0.4–1 s decay, Poisson spikes), active dendrite segments, a neuropil
background with its own slow activity, dark blood vessels, and shot noise. ROI candidates are
extracted by the same PCA/ICA path as real movies and labelled by overlap with the true somata:
``cell`` (IoU ≥ 0.3 with a soma) or ``not_cell`` (dendrites, vessel edges, neuropil, noise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from napari_cellcurator.core.io.pcaica import extract_candidates
from napari_cellcurator.core.io.rois import RoiSet


@dataclass
class SimRecording:
    """A simulated movie and its truth."""

    movie: np.ndarray  # (T, Y, X) float32
    cell_weights: list[np.ndarray] = field(default_factory=list)  # (Y, X) per soma
    cell_dff: np.ndarray | None = None  # (n_cells, T)
    dendrite_masks: list[np.ndarray] = field(default_factory=list)
    vessel_mask: np.ndarray | None = None
    fs: float = 30.0


def calcium_kernel(fs: float, tau_decay: float, tau_rise: float = 0.05) -> np.ndarray:
    """Double-exponential GCaMP impulse response (peak 1)."""
    t = np.arange(int(fs * tau_decay * 6)) / fs
    k = np.exp(-t / tau_decay) - np.exp(-t / tau_rise)
    return k / k.max()


def spike_dff(rng: np.random.Generator, n_frames: int, fs: float, rate: float,
              tau_decay: float, amp: float) -> np.ndarray:
    """ΔF/F of Poisson spiking (bursts allowed) convolved with the calcium kernel."""
    spikes = rng.poisson(rate / fs, size=n_frames).astype(np.float64)
    spikes *= rng.lognormal(0, 0.3, size=n_frames)
    return amp * np.convolve(spikes, calcium_kernel(fs, tau_decay))[:n_frames]


def _soma(shape, cy, cx, r, rng) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    ry, rx = r * rng.uniform(0.85, 1.15), r * rng.uniform(0.85, 1.15)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    w = np.clip(1.5 - d * 1.5 + 0.5, 0, 1) * (d < 1.15)
    if rng.random() < 0.5:  # GCaMP is excluded from the nucleus: a donut
        w *= 1 - 0.6 * np.exp(-(d / 0.45) ** 2)
    return w.astype(np.float32)


def _curve(shape, rng, length, width) -> np.ndarray:
    """A thin, gently curving tube (dendrite or vessel) as a soft mask."""
    mask = np.zeros(shape, np.float32)
    y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(int(length)):
        angle += rng.normal(0, 0.08)
        y, x = y + np.sin(angle), x + np.cos(angle)
        iy, ix = int(round(y)), int(round(x))
        if 0 <= iy < shape[0] and 0 <= ix < shape[1]:
            mask[iy, ix] = 1
    mask = gaussian_filter(mask, width / 2.5)
    return mask / mask.max() if mask.max() > 0 else mask


def simulate_recording(seed: int = 0, shape: tuple[int, int] = (96, 96), n_frames: int = 300,
                       fs: float = 30.0, n_cells: int = 22, n_dendrites: int = 5,
                       n_vessels: int = 1, photons: float = 60.0) -> SimRecording:
    """Simulate one recording (see module docstring)."""
    rng = np.random.default_rng(seed)
    t = n_frames
    neuropil_map = gaussian_filter(rng.normal(size=shape), 6)
    neuropil_map = 0.6 + 0.4 * (neuropil_map - neuropil_map.min()) / np.ptp(neuropil_map)
    slow = gaussian_filter(rng.normal(size=t), fs * 2) * 8
    neuropil_act = 0.05 * slow + 0.3 * spike_dff(rng, t, fs, 3.0, 0.7, 0.05)
    movie = neuropil_map[None] * (1 + neuropil_act[:, None, None])
    vessel = np.zeros(shape, np.float32)
    for _ in range(n_vessels):
        vessel = np.maximum(vessel, _curve(shape, rng, rng.uniform(60, 140), rng.uniform(3, 7)))
    cells, dffs, centres = [], [], []
    for _ in range(n_cells):
        r = rng.uniform(4.5, 7.5)
        if centres and rng.random() < 0.2:  # an overlapping neighbour
            cy0, cx0 = centres[rng.integers(len(centres))]
            a = rng.uniform(0, 2 * np.pi)
            cy, cx = cy0 + 1.5 * r * np.sin(a), cx0 + 1.5 * r * np.cos(a)
        else:
            cy, cx = rng.uniform(4, shape[0] - 4), rng.uniform(4, shape[1] - 4)
        centres.append((cy, cx))
        w = _soma(shape, cy, cx, r, rng)
        rate = rng.choice([0.02, 0.2, 0.5, 1.0, 2.0])
        dff = spike_dff(rng, t, fs, rate, rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.5))
        f0 = rng.uniform(0.6, 1.6)
        movie = movie + (w * f0)[None] * (1 + dff[:, None, None]).astype(np.float32)
        cells.append(w)
        dffs.append(dff)
    dendrites = []
    for _ in range(n_dendrites):
        m = _curve(shape, rng, rng.uniform(15, 45), rng.uniform(1.0, 2.2))
        dff = spike_dff(rng, t, fs, rng.uniform(0.3, 2.0), rng.uniform(0.3, 0.8), 1.0)
        movie = movie + (m * rng.uniform(0.4, 1.0))[None] * (1 + dff[:, None, None])
        dendrites.append(m > 0.3)
    movie = movie * (1 - 0.7 * vessel)[None]  # vessels are dark: they block the fluorescence
    movie = rng.poisson(np.clip(movie, 0, None) * photons).astype(np.float32) / photons
    return SimRecording(movie.astype(np.float32), cells, np.array(dffs), dendrites,
                        vessel > 0.3, fs)


def label_candidates(sim: SimRecording, rois: RoiSet, iou_min: float = 0.3) -> list[str]:
    """``cell`` where a candidate overlaps a true soma with IoU ≥ ``iou_min``."""
    truth = [w > 0.25 for w in sim.cell_weights]
    labels = []
    for ypix, xpix, _ in rois.footprints:
        mask = np.zeros(sim.movie.shape[1:], bool)
        mask[ypix, xpix] = True
        best = max((np.logical_and(mask, m).sum() / np.logical_or(mask, m).sum()
                    for m in truth), default=0.0)
        labels.append("cell" if best >= iou_min else "not_cell")
    return labels


def simulate_candidates(seed: int = 0, **kwargs) -> tuple[SimRecording, RoiSet]:
    """A simulated recording and its labelled PCA/ICA candidates (with neuropil traces)."""
    sim = simulate_recording(seed, **kwargs)
    rois = extract_candidates(sim.movie, Path(f"sim_{seed}"), n_pcs=40, seed=seed)
    rois.labels = label_candidates(sim, rois)
    rois.meta["id_prefix"] = f"sim{seed}"
    rois.groups = [f"sim{seed}"] * len(rois.footprints)
    return sim, rois


def save_suite2p_like(sim: SimRecording, rois: RoiSet, folder: Path) -> Path:
    """Write ``folder/plane0`` as Suite2p would (stat, F, Fneu, iscell, ops) + ``truth.json``.

    ``iscell`` holds the simulation truth (1/0, probability 1/0), as a curated folder would.
    """
    plane = Path(folder) / "plane0"
    plane.mkdir(parents=True, exist_ok=True)
    ly, lx = sim.movie.shape[1:]
    stat = np.empty(len(rois.footprints), dtype=object)
    for i, (ypix, xpix, lam) in enumerate(rois.footprints):
        stat[i] = {"ypix": ypix.astype(np.int32), "xpix": xpix.astype(np.int32),
                   "lam": np.asarray(lam, np.float32), "npix": int(len(ypix)),
                   "med": [float(np.median(ypix)), float(np.median(xpix))]}
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    np.save(plane / "F.npy", np.asarray(rois.traces, np.float32))
    fneu = rois.neuropil if rois.neuropil is not None else np.zeros_like(rois.traces)
    np.save(plane / "Fneu.npy", np.asarray(fneu, np.float32))
    cell = np.array([lab == "cell" for lab in (rois.labels or [])], np.float64)
    np.save(plane / "iscell.npy", np.stack([cell, cell], axis=1))
    ops = {"Ly": ly, "Lx": lx, "fs": sim.fs, "nframes": sim.movie.shape[0],
           "meanImg": sim.movie.mean(axis=0).astype(np.float32),
           "max_proj": sim.movie.max(axis=0).astype(np.float32), "yrange": [0, ly],
           "xrange": [0, lx], "simulated": True}
    np.save(plane / "ops.npy", np.array(ops, dtype=object), allow_pickle=True)
    truth = {"n_cells_true": len(sim.cell_weights), "n_candidates": len(rois.footprints),
             "labels": rois.labels, "fs": sim.fs,
             "note": "simulated by napari_cellcurator.core.data.simulate_calcium; iscell = truth"}
    (Path(folder) / "truth.json").write_text(json.dumps(truth, indent=1))
    return plane
