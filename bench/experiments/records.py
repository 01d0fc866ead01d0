"""The JSON line an experiment writes per training run (shared by the experiments here)."""

from __future__ import annotations


def run_record(saved, seconds: float, **fields) -> dict:
    """``fields`` + the validation metrics of a ``pipeline.train`` result: the chosen epoch's
    and the last epoch's (nothing chosen) accuracy and macro-F1, and every epoch's accuracy."""
    val, history = saved.config.metrics["validation"], saved.config.history
    return {**fields, "seconds": round(seconds),
            "best_epoch": saved.config.metrics["best_epoch"],
            "accuracy": round(val["accuracy"], 4), "macro_f1": round(val["macro_f1"], 4),
            "last_epoch_accuracy": round(history[-1]["val_accuracy"], 4),
            "last_epoch_macro_f1": round(history[-1]["val_macro_f1"], 4),
            "val_accuracy_by_epoch": [round(h["val_accuracy"], 4) for h in history]}
