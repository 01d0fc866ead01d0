"""What a task is: how items are read, become tensors, which models fit, loss and metrics.

Adding a task = one module subclassing :class:`ClassificationTask` (or :class:`Task`) and one
line in :data:`napari_cellcurator.core.tasks.TASK_MODULES`.
"""

from __future__ import annotations

import math
import pickle
import struct
import warnings
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from napari_cellcurator.core.data.quality import QC_KEEP, passes_qc
from napari_cellcurator.core.errors import CellCuratorError, InputError, InputWarning
from napari_cellcurator.core.io.arrays import split_fragment
from napari_cellcurator.core.io.items import ItemSet, concat_itemsets, ids_distinct_across_paths
from napari_cellcurator.core.io.names import natural_key
from napari_cellcurator.core.metrics import classification_metrics, proportion_metrics
from napari_cellcurator.core.progress import ProgressFn

#: Exceptions decoders and array code raise on corrupt or oddly shaped files (tifffile, PIL,
#: zarr, h5py, json, numpy...). Read failures of these types become an :class:`InputError`;
#: anything else (a bug) keeps its traceback.
READER_FAILURES: tuple[type[BaseException], ...] = (
    ValueError, TypeError, IndexError, KeyError, AttributeError, OSError, EOFError,
    ArithmeticError, MemoryError, RuntimeError, struct.error, zlib.error,
    pickle.UnpicklingError,
)


@dataclass
class ReadOptions:
    """Options readers understand (unknown ones are ignored by readers that do not need them).

    Attributes
    ----------
    channels
        Channel indices to keep (e.g. ``[0, 2]`` for label-free Jurkat); None keeps all.
    crop_size
        Side of square crops cut around cells (celltype/cellness); None = the task default.
    extra
        Task-specific options (snippet length, stride, trace length...).
    progress
        ``progress(fraction, stage)`` for readers with long passes over a recording (PCA/ICA
        candidates, traces of ROIs in a movie); it may raise
        :class:`~napari_cellcurator.core.progress.Cancelled`. Not part of a model's config.
    """

    channels: list[int] | None = None
    crop_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    progress: ProgressFn | None = field(default=None, repr=False, compare=False)

    @classmethod
    def every_item(cls, channels: list[int] | None = None) -> ReadOptions:
        """Options of prediction and curation reads (napari Load, ``labels``, ``review``,
        ``export``): no item is filtered out — ones the quality filter would drop are kept
        and marked in a ``qc_flag`` column, which training and evaluation skip."""
        return cls(channels=channels, extra={QC_KEEP: True})


def scored_rows(table: pd.DataFrame) -> np.ndarray:
    """The rows metrics count: labelled, and not marked by the quality filter (items read
    with every cell kept mark the cells training and evaluation leave out)."""
    return table["label"].notna().to_numpy() & passes_qc(table)


@dataclass
class Hyper:
    """Default training hyper-parameters of a task (overridable from CLI/widgets)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    balance: str = "sampler"  # "sampler" | "weights" | "none": how class imbalance is met
    ema_epochs: float = 0.0  # EMA of the weights over ~this many epochs (TrainConfig); 0 off
    lr_floor: float = 0.0  # the schedule ends at this fraction of ``lr`` (TrainConfig)
    #: training samples one default run sees at most: larger data sets get fewer epochs
    #: (never under ``min_epochs``), so default training time stops growing with the data
    sample_budget: int | None = None
    min_epochs: int = 10

    def epochs_for(self, n_train: int) -> int:
        """Default epochs for ``n_train`` training items (``epochs``, capped by the budget)."""
        if not self.sample_budget or n_train <= 0:
            return self.epochs
        return max(min(self.min_epochs, self.epochs),
                   min(self.epochs, math.ceil(self.sample_budget / n_train)))


class Task(ABC):
    """One kind of curation problem. Subclasses are stateless singletons-by-name."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "classification" or "proportion"
    default_arch: ClassVar[str]
    input_keys: ClassVar[tuple[str, ...]]
    hyper: ClassVar[Hyper] = Hyper()
    #: labels read from the data files are another classifier's output (Suite2p ``iscell``),
    #: which the model's predictions replace in the curated result (``core.curation``);
    #: False: they are an expert's labels and beat the model
    file_labels_are_predictions: ClassVar[bool] = False
    #: input on which occlusion maps are drawn, and spatial axes of that input
    explain_input: ClassVar[str] = "image"
    #: what an occluded patch becomes by default (``core.explain.occlusion.fill_image``):
    #: the value that means "nothing here" for this task's inputs
    occlusion_fill: ClassVar[str] = "mean"

    # ---- reading -------------------------------------------------------------------------
    @abstractmethod
    def read(self, path: Path, options: ReadOptions) -> ItemSet:
        """Read one ``--data`` path (format detected from the path) into an :class:`ItemSet`."""

    def read_many(self, paths: list[str | Path], options: ReadOptions | None = None) -> ItemSet:
        """Read and concatenate several data paths."""
        options = options or ReadOptions()
        sets = []
        paths = [Path(p) for p in paths]
        resolved = [p.expanduser().resolve() for p in paths]
        twice = next((p for i, p in enumerate(paths) if resolved[i] in resolved[:i]), None)
        if twice is not None:  # its items would be counted twice under two names
            raise InputError(twice, "is given twice as --data", "each data path once")
        for p in paths:
            if not split_fragment(p)[0].exists():  # data.npz#test names a set inside a file
                raise InputError(p, "does not exist")
            sets.append(self.read_checked(p, options))
            if len(sets) == 1:
                options = self.options_after_first(sets[0], options)
        return concat_itemsets(ids_distinct_across_paths(sets, paths))

    def options_after_first(self, first: ItemSet, options: ReadOptions) -> ReadOptions:
        """How the data paths after the first are read (default: as the first); a task whose
        reader fits settings to the data (a crop size) makes the others follow the first."""
        return options

    def read_checked(self, path: Path, options: ReadOptions) -> ItemSet:
        """:meth:`read`, with decoding/shape errors a reader let through turned into
        :class:`InputError` naming the file (readers should raise their own, clearer ones)."""
        try:
            return self.read(path, options)
        except CellCuratorError:
            raise
        except READER_FAILURES as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise InputError(path, f"could not be read: {type(exc).__name__}: {first}",
                             f"data for the {self.name} task") from exc

    def check_label(self, label: str, known: list[str], new_class: bool = False) -> str:
        """A label typed by a person, as it will be stored, or :class:`InputError`.

        Parameters
        ----------
        label
            What was typed.
        known
            Classes the data and the journal already have.
        new_class
            Whether a label outside ``known`` may start a new class.
        """
        return label

    # ---- tensors -------------------------------------------------------------------------
    @abstractmethod
    def fit_preprocessing(self, items: ItemSet, options: ReadOptions) -> dict:
        """Statistics and settings fitted on training items; JSON-able, saved in the config."""

    @abstractmethod
    def make_batch(
        self, items: ItemSet, index: np.ndarray, prep: dict, augment: bool,
        rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """Model inputs (float tensors, keyed by ``input_keys``) for rows ``index``."""

    @abstractmethod
    def model_spec(self, prep: dict, classes: list[str]) -> dict:
        """Keyword arguments for :func:`build_model` (in_channels, n_outputs, input_size...)."""

    def test_time_views(self, batch: dict[str, torch.Tensor], prep: dict
                        ) -> list[dict[str, torch.Tensor]]:
        """Views of a batch whose logits prediction averages (test-time augmentation).

        The default is the batch alone; tasks with symmetric inputs may add flips/rotations
        (as recorded in ``prep``, so a saved model predicts the way it was evaluated).
        """
        return [batch]

    def read_options_from(self, prep: dict) -> ReadOptions:
        """Read options that reproduce, at prediction time, how training data were read."""
        return ReadOptions(**prep.get("read_options", {}))

    # ---- targets, loss, outputs, metrics ---------------------------------------------------
    @abstractmethod
    def classes_from(self, items: ItemSet) -> list[str]:
        """Class names (for mixture: the two cell types, proportion = fraction of the second)."""

    @abstractmethod
    def targets(self, table: pd.DataFrame, classes: list[str]) -> np.ndarray:
        """Training targets of labelled rows."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, class_weights=None,
             arch: str = "") -> torch.Tensor:
        """Training loss."""

    @abstractmethod
    def outputs_to_scores(self, logits: torch.Tensor) -> np.ndarray:
        """Probabilities (N, K) for classification, proportions (N,) for mixture."""

    @abstractmethod
    def prediction_table(self, table: pd.DataFrame, scores: np.ndarray,
                         classes: list[str]) -> pd.DataFrame:
        """``item_id`` plus prediction columns to write into ``layer.features`` / CSV."""

    def input_drift(self, items: ItemSet, prep: dict) -> str | None:
        """Why ``items`` look unlike the model's training data (another intensity scale),
        in words, or None: said before scoring, never a reason to refuse."""
        return None

    @abstractmethod
    def metrics(self, table: pd.DataFrame, scores: np.ndarray, classes: list[str]) -> dict:
        """Metrics over the labelled rows of ``table`` (:func:`scored_rows`)."""

    @abstractmethod
    def primary_metric(self) -> str:
        """Key of the metric used to pick the best epoch (higher is better)."""

    def shipped_model(self) -> str | None:
        """The model folder shipped with the package for this task's default architecture
        (what Predict uses before a project has its own), or None."""
        return self.default_init(self.default_arch)

    def default_init(self, arch: str) -> str | None:
        """Model folder to start training from when ``--init`` is not given (e.g. a model
        pretrained on simulated data shipped with the package); None = random init."""
        return None

    def write_back(self, items: ItemSet, predictions: pd.DataFrame, target: Path) -> Path:
        """Write predictions where the user's pipeline reads them (e.g. Suite2p ``iscell.npy``).

        Tasks without a native format raise; CSV/Parquet export works for every task.
        """
        raise NotImplementedError(f"task {self.name!r} has no native write-back format")

    def explain_score(self, logits: torch.Tensor, target: int | None) -> torch.Tensor:
        """Scalar per item whose change explanations map (class probability or proportion)."""
        probs = torch.softmax(logits, dim=1)
        if target is None:
            target_idx = probs.argmax(dim=1)
        else:
            target_idx = torch.full((probs.shape[0],), int(target), device=probs.device)
        return probs.gather(1, target_idx[:, None])[:, 0]

    def explain_logit(self, logits: torch.Tensor, target: int | None) -> torch.Tensor:
        """The target's score before the softmax (what Grad-CAM differentiates: the
        probability saturates on confident items and its gradient vanishes to noise)."""
        logits = logits.reshape(logits.shape[0], -1)
        if target is None:
            target_idx = logits.argmax(dim=1)
        else:
            target_idx = torch.full((logits.shape[0],), int(target), device=logits.device)
        return logits.gather(1, target_idx[:, None])[:, 0]


class ClassificationTask(Task):
    """Shared logic of the classification tasks (celltype, cellness)."""

    kind = "classification"

    def classes_from(self, items: ItemSet) -> list[str]:
        declared = items.meta.get("classes")
        found = sorted(items.table["label"].dropna().astype(str).unique(), key=natural_key)
        if declared:
            return list(declared) + [c for c in found if c not in declared]
        return found

    def check_label(self, label: str, known: list[str], new_class: bool = False) -> str:
        label = label.strip()
        if not label:
            raise InputError(None, "the label is empty", "a class name")
        if label in known or new_class:
            return label
        # a typo ("G 1", "g1") would otherwise start a class of its own, silently
        raise InputError(None, f"label {label!r} is not one of the classes {known}",
                         "one of them, or --new-class to start a new class")

    def targets(self, table: pd.DataFrame, classes: list[str]) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(classes)}
        labels = table["label"].astype(str)
        unknown = sorted(set(labels) - set(lookup))
        if unknown:
            raise InputError(None, f"labels {unknown} are not among the model's classes {classes}")
        return labels.map(lookup).to_numpy(dtype=np.int64)

    def loss(self, logits, targets, class_weights=None, arch: str = ""):
        return torch.nn.functional.cross_entropy(logits, targets, weight=class_weights)

    def outputs_to_scores(self, logits):
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def no_scores(self, classes: list[str]) -> np.ndarray:
        """Scores of no items: (0, K)."""
        return np.zeros((0, len(classes)), np.float32)

    def prediction_table(self, table, scores, classes):
        order = np.sort(scores, axis=1)
        top = scores.argmax(axis=1)
        margin = order[:, -1] - (order[:, -2] if scores.shape[1] > 1 else 0)
        out = pd.DataFrame({
            "item_id": table["item_id"].to_numpy(),
            "prediction": np.asarray(classes, dtype=object)[top],
            "probability": order[:, -1],
            # 1 - margin between the two best classes: 1 = a coin toss, 0 = certain
            "uncertainty": 1.0 - margin,
        })
        for i, c in enumerate(classes):
            out[f"prob_{c}"] = scores[:, i]
        # argmax of a row with NaN is an arbitrary class: no class rather than a wrong one
        out.loc[~np.isfinite(scores).all(axis=1), "prediction"] = None
        return out

    def metrics(self, table, scores, classes):
        mask = scored_rows(table)
        if not mask.any():
            return {"n": 0}
        labels = table.loc[mask, "label"].astype(str)
        # classes the model never saw still count: as errors it cannot avoid, so a held-out
        # set with a rare extra class gets an honest score instead of no score at all
        unknown = sorted(set(labels) - set(classes), key=natural_key)
        if unknown:
            warnings.warn(f"labels {unknown} are not among the model's classes {list(classes)}; "
                          "they are scored as errors", InputWarning, stacklevel=2)
        all_classes = list(classes) + unknown
        y = self.targets(table[mask], all_classes)
        out = classification_metrics(y, scores[mask].argmax(axis=1), all_classes)
        if unknown:
            out["unknown_classes"] = unknown
        return out

    def primary_metric(self) -> str:
        return "macro_f1"


class ProportionTask(Task):
    """Regression of a proportion in [0, 1] with binary cross-entropy (mixture)."""

    kind = "proportion"
    explain_input = "frames"

    def classes_from(self, items: ItemSet) -> list[str]:
        return list(items.meta.get("classes", ["type_a", "type_b"]))

    def check_label(self, label: str, known: list[str], new_class: bool = False) -> str:
        # the two cell types' names (the first names in ``known``) mark pure snippets: 0 / 1
        types = [k for k in known if not _is_number(k)][:2]
        by_name = {t.strip().lower(): float(i) for i, t in enumerate(types)}
        text = str(label).strip()
        value = by_name.get(text.lower(), float(text) if _is_number(text) else float("nan"))
        if not 0.0 <= value <= 1.0:  # also NaN
            named = f", or {types[0]!r} (0) / {types[1]!r} (1)" if len(types) == 2 else ""
            raise InputError(None, f"label {label!r} is not a proportion",
                             f"a number from 0 to 1 (the fraction of the second cell type)"
                             f"{named}")
        return f"{value:g}"

    def targets(self, table, classes):
        return table["label"].astype(float).to_numpy(dtype=np.float32)

    def loss(self, logits, targets, class_weights=None, arch: str = ""):
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits.reshape(-1), targets.float()
        )

    def outputs_to_scores(self, logits):
        return torch.sigmoid(logits.float().reshape(-1)).cpu().numpy()

    def no_scores(self, classes: list[str]) -> np.ndarray:
        """Scores of no items: (0,) proportions."""
        return np.zeros((0,), np.float32)

    def prediction_table(self, table, scores, classes):
        return pd.DataFrame({
            "item_id": table["item_id"].to_numpy(),
            "proportion": scores,
            # NaN >= 0.5 is False: a NaN score would read as a confident classes[0]
            "prediction": np.where(np.isfinite(scores),
                                   np.where(scores >= 0.5, classes[1], classes[0]), None),
            "probability": np.maximum(scores, 1 - scores),
            "uncertainty": 1.0 - 2.0 * np.abs(scores - 0.5),
        })

    def metrics(self, table, scores, classes):
        mask = scored_rows(table)
        y = table.loc[mask, "label"].astype(float).to_numpy()
        out = proportion_metrics(y, scores[mask])
        # dominant-type view so the JSON has the same fields as the classifiers
        dominant = classification_metrics((y >= 0.5).astype(int), (scores[mask] >= 0.5).astype(int),
                                          list(classes))
        out.update({k: dominant[k] for k in ("per_class", "confusion", "macro_f1", "classes")})
        out["dominant_type_accuracy"] = dominant["accuracy"]
        out["accuracy"] = out["A"]
        return out

    def primary_metric(self) -> str:
        return "A"

    def explain_score(self, logits, target):
        p = torch.sigmoid(logits.reshape(-1))
        return p if target in (None, 1) else 1 - p

    def explain_logit(self, logits, target):
        logit = logits.reshape(-1)
        return logit if target in (None, 1) else -logit


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
