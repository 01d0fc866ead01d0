"""The celltype task: class of single-cell crops (multi-channel, label-free included)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from napari_cellcurator.core.data.crops import (
    VIEW_SETS,
    augment_crops,
    dataset_symmetries,
    dihedral_views,
    normalise_crops,
    normalise_per_cell,
)
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.celltype_readers import read_celltype_path
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.models.celltype import stem_stride_for
from napari_cellcurator.core.tasks.base import ClassificationTask, Hyper, ReadOptions


class CellTypeTask(ClassificationTask):
    """Crops → class. Inputs: ``image`` (N, C, S, S)."""

    name = "celltype"
    default_arch = "resnet"
    input_keys = ("image",)
    # 40 epochs: 285 s on Jurkat (40 px), 308 s on Chula (32 px), 2 CPU cores with bf16
    # training (411 s / 508 s in float32; bench/celltype_report.py); sqrt-balanced sampling
    # keeps rare-class recall (macro-F1).
    # EMA of the weights over ~3 epochs (decay 0.99 at Jurkat's 34 steps/epoch): Jurkat
    # label-free accuracy 0.772/0.746 → 0.784/0.786 (seeds 0/1); Chula 0.730 → 0.726 (seed 0,
    # within the ±0.03 seed spread)
    # Read option ``symmetry="auto"`` augments only with the flips/turns under which the data
    # set's mean crop stays the same (``dataset_symmetries``; Jurkat IFC: identity + up-down
    # mirror). Measured against all eight (the default): full Jurkat label-free accuracy
    # 0.793/0.798/0.793 vs 0.784/0.786/0.798 (seeds 0/1/2), but 150+150 Jurkat G1/G2 cells
    # 0.891 vs 0.904 (4 seeds) and autoencoder cluster NMI lower — within the seed spread
    # either way, so the whole group stays the default.
    # 40 epochs, not 20 (bench/experiments/celltype_sweep.py, mean of 3 seeds, GPU): Jurkat
    # label-free 20/30/40/80 epochs 0.79/0.79/0.80/0.80; Chula (cell norm) 0.80/0.82/0.83/0.84.
    # The sample budget caps epochs on larger sets (Chula's 4,171 training cells: 40), so
    # default training stays within 10 minutes on 2 CPU cores.
    # The schedule anneals to 0.3 × lr, not to ~0 (bench/experiments/lr_floor.py, CPU,
    # seeds 0/1/2, last epoch on the validation cells): Jurkat label-free 0.784/0.791/0.791 vs
    # 0.765/0.786/0.791 — its accuracy had peaked mid-run and fallen as the rate went to 0 —
    # Chula 0.833/0.827/0.836 vs 0.832/0.822/0.835; macro-F1 the same or higher.
    hyper = Hyper(epochs=40, batch_size=64, lr=2e-3, weight_decay=1e-4, balance="sampler",
                  ema_epochs=3.0, sample_budget=170_000, lr_floor=0.3)
    #: normalisations: "dataset" keeps absolute brightness/size (cell-cycle: DNA content and
    #: cell size); "cell" standardises each crop (robust to illumination, loses brightness).
    #: Without a ``norm`` read option, 8-bit colour images (stained bright-field photographs:
    #: smears, histology) get "cell" — stain and lamp vary from slide to slide — and anything
    #: else (fluorescence, IFC, 16-bit) "dataset". Measured (3 seeds, 40 epochs): Chula
    #: held-out smears 0.782 → 0.832 with "cell"; Jurkat IFC 0.799 → 0.763
    NORMS = ("dataset", "cell")
    #: test-time views averaged at prediction (flips/rotations, see ``dihedral_views``); read
    #: option ``tta`` (1, 2, 4, 8) overrides. 1: over 13 validation runs 4 views changed
    #: accuracy by -0.007..+0.019 (Chula +0.009 on average, Jurkat macro-F1 down to -0.035)
    #: at 4× the inference cost
    TTA_VIEWS = 1
    #: label smoothing of the training loss: expert labels of neighbouring classes (G1/S/G2,
    #: normal/macrocyte) overlap; 0.1: Jurkat label-free accuracy 0.760 → 0.770 (mean of 2 seeds);
    #: Chula: no change
    LABEL_SMOOTHING = 0.1

    #: a data set whose mean pixel lies this many training pixel standard deviations from
    #: the training mean in a channel was recorded at another scale (an 8-bit export of
    #: 16-bit images, another camera gain): "dataset" normalisation keeps absolute
    #: intensities, so the model would see other cells. Class differences are far smaller
    #: (Jurkat: the class means of a channel lie within 0.3 of its standard deviation; an
    #: 8-bit export of its bright field lies 10 away)
    DRIFT_SDS = 2.0

    def input_drift(self, items: ItemSet, prep: dict) -> str | None:
        if prep.get("norm") != "dataset" or len(items) == 0:
            return None  # per-cell normalisation does not see the scale
        index = np.unique(np.linspace(0, len(items) - 1, min(len(items), 500)).astype(int))
        crops = items.load(index, "image").astype(np.float32)
        if crops.ndim != 4 or crops.shape[1] != len(prep["channel_mean"]):
            return None  # refused with its own error when batched
        mean = crops.mean(axis=(0, 2, 3))
        trained, spread = np.asarray(prep["channel_mean"]), np.asarray(prep["channel_std"])
        z = np.abs(mean - trained) / spread
        if z.max() <= self.DRIFT_SDS:
            return None
        c = int(z.argmax())
        return (f"channel {c} has a mean intensity of {mean[c]:.4g}, {z[c]:.1f} standard "
                f"deviations from the training data's {trained[c]:.4g} (another bit depth, "
                "camera or gain?): the model was not trained on images like these")

    def read(self, path: Path, options: ReadOptions) -> ItemSet:
        return read_celltype_path(path, options)

    def options_after_first(self, first: ItemSet, options: ReadOptions) -> ReadOptions:
        """Crop folders after the first are read at its input side, fit and scale: two
        exports of one instrument with different crop sizes share one pixel scale."""
        settings = first.meta.get("read_settings")
        if not settings or options.crop_size is not None or options.extra.get("fit"):
            return options
        return dataclasses.replace(options, crop_size=int(first.arrays["image"].shape[-1]),
                                   extra={**dict(options.extra), **settings})

    def fit_preprocessing(self, items: ItemSet, options: ReadOptions) -> dict:
        images = items.arrays["image"]
        if len(images) == 0:
            raise InputError(None, "no training crops")
        sample = np.asarray(images[: min(len(images), 2000)], dtype=np.float32)
        norm = options.extra.get("norm") or default_norm(sample)
        if norm not in self.NORMS:
            raise InputError(None, f"unknown normalisation {norm!r}", f"one of {self.NORMS}")
        if norm == "cell":
            sample = normalise_per_cell(sample)
        mean = sample.mean(axis=(0, 2, 3))
        std = sample.std(axis=(0, 2, 3)) + 1e-6
        tta = int(options.extra.get("tta", self.TTA_VIEWS))
        if tta not in VIEW_SETS:
            raise InputError(None, f"tta={tta} test-time views", f"one of {sorted(VIEW_SETS)}")
        symmetry = options.extra.get("symmetry", "all")
        if symmetry not in ("auto", "all"):
            raise InputError(None, f"symmetry={symmetry!r}", "'auto' or 'all'")
        symmetries = (dataset_symmetries(sample) if symmetry == "auto"
                      else [list(v) for v in VIEW_SETS[8]])
        return {
            "norm": norm,
            "tta": tta,
            "augment": {"max_shift": max(1, int(images.shape[-1]) // 16), "noise": 0.05,
                        "blur_p": 0.2, "gain": 0.05,
                        "symmetries": [[int(k), bool(m)] for k, m in symmetries]},
            "read_options": {"channels": options.channels, "crop_size": images.shape[-1],
                             "extra": {**_read_settings(items), **dict(options.extra)}},
            "input_size": int(images.shape[-1]),
            "in_channels": int(images.shape[1]),
            "channel_mean": mean.tolist(),
            "channel_std": std.tolist(),
        }

    def make_batch(self, items, index, prep, augment, rng):
        crops = items.load(index, "image").astype(np.float32)
        if crops.ndim != 4 or crops.shape[1] != prep["in_channels"]:
            # numpy would broadcast 1 channel to the model's 3: refuse instead of guessing
            found = crops.shape[1] if crops.ndim == 4 else f"shape {crops.shape[1:]} /"
            raise InputError(items.meta.get("path"), f"images have {found} channels",
                             f"{prep['in_channels']} channels, as the model was trained on")
        if prep.get("norm") == "cell":
            crops = normalise_per_cell(crops)
        crops = normalise_crops(crops, prep["channel_mean"], prep["channel_std"])
        if augment:
            # the seed paper's balancing augmentation: flips, rotations, shifts, blur, noise
            crops = augment_crops(crops, rng, **prep.get("augment", {}))
        return {"image": torch.from_numpy(np.ascontiguousarray(crops))}

    def loss(self, logits, targets, class_weights=None, arch: str = ""):
        return torch.nn.functional.cross_entropy(logits, targets, weight=class_weights,
                                                 label_smoothing=self.LABEL_SMOOTHING)

    def test_time_views(self, batch, prep):
        n_views = int(prep.get("tta", 1))
        if n_views == 1:
            return [batch]
        allowed = prep.get("augment", {}).get("symmetries")  # None in older configs: all
        return [{"image": v} for v in dihedral_views(batch["image"], n_views, allowed)]

    def model_spec(self, prep, classes):
        spec = {"in_channels": prep["in_channels"], "n_outputs": len(classes),
                "input_size": prep["input_size"]}
        if prep.get("norm") is not None:  # configs written before stem strides existed omit it
            spec["stem_stride"] = stem_stride_for(prep["input_size"])
        return spec


def default_norm(crops: np.ndarray) -> str:
    """"cell" for 8-bit colour crops (3 channels, values within 0…255: stained bright-field
    photographs), else "dataset" (see :attr:`CellTypeTask.NORMS`)."""
    colour = crops.ndim == 4 and crops.shape[1] == 3
    eight_bit = crops.size > 0 and float(crops.min()) >= 0 and float(crops.max()) <= 255
    return "cell" if colour and eight_bit else "dataset"


def _read_settings(items: ItemSet) -> dict:
    """Reader settings (defaults included) recorded by the reader, possibly per data path."""
    settings = dict(items.meta.get("read_settings") or {})
    for part in items.meta.get("parts", []):
        settings.update(part.get("read_settings") or {})
    return settings
