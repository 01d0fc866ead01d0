"""The celltype task: class of single-cell crops (multi-channel, label-free included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from napari_cellcurator.core.data.crops import augment_crops, normalise_crops
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.celltype_readers import read_celltype_path
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks.base import ClassificationTask, Hyper, ReadOptions


class CellTypeTask(ClassificationTask):
    """Crops → class. Inputs: ``image`` (N, C, S, S)."""

    name = "celltype"
    default_arch = "resnet"
    input_keys = ("image",)
    hyper = Hyper(epochs=15, batch_size=64, lr=2e-3, weight_decay=1e-4, balance="sampler")

    def read(self, path: Path, options: ReadOptions) -> ItemSet:
        return read_celltype_path(path, options)

    def fit_preprocessing(self, items: ItemSet, options: ReadOptions) -> dict:
        images = items.arrays["image"]
        if len(images) == 0:
            raise InputError(None, "no training crops")
        sample = np.asarray(images[: min(len(images), 2000)], dtype=np.float32)
        mean = sample.mean(axis=(0, 2, 3))
        std = sample.std(axis=(0, 2, 3)) + 1e-6
        return {
            "read_options": {"channels": options.channels, "crop_size": images.shape[-1],
                             "extra": dict(options.extra)},
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
        crops = normalise_crops(crops, prep["channel_mean"], prep["channel_std"])
        if augment:
            crops = augment_crops(crops, rng)
        return {"image": torch.from_numpy(np.ascontiguousarray(crops))}

    def model_spec(self, prep, classes):
        return {"in_channels": prep["in_channels"], "n_outputs": len(classes),
                "input_size": prep["input_size"]}
